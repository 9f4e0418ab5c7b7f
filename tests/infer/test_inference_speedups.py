"""The CPU fast paths give the results of the plain formulations they replace.

Covers the channels-last convolutions of the decoder (``apply_conv``, the
no-grad ``Generator`` path), the banded relative attention, the skipped
all-ones attention mask, RMVPE in channels-last, and the ``StageTimes``
observer hook the benchmark uses.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from infer import pipeline
from infer.f0.rmvpe import RmvpePredictor
from infer.models import attentions
from infer.models.generators import Generator
from infer.models.modules import apply_conv
from infer.models.rmvpe import E2E, RmvpeConfig
from infer.pipeline import STAGES, StageTimes
from infer.testing.rmvpe import save_tiny_rmvpe
from infer.testing.synth import randomize_parameters


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv1d(6, 8, 5, padding=4, dilation=2),
        nn.Conv1d(1, 8, 8, stride=4, padding=2),
        nn.Conv1d(8, 8, 3, padding=1, groups=2),
        nn.ConvTranspose1d(8, 4, 16, stride=10, padding=3),
        nn.ConvTranspose1d(6, 4, 4, stride=2, padding=1, output_padding=1),
    ],
    ids=["dilated", "strided-from-1", "grouped", "transposed", "transposed-output-pad"],
)
def test_apply_conv_on_rows_equals_the_module(conv: nn.Module) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, conv.in_channels, 37)
    with torch.no_grad():
        expected = conv(x)
        assert torch.equal(apply_conv(conv, x), expected)
        rows = apply_conv(conv, _rows(x))
    assert rows.shape == (2, conv.out_channels, 1, expected.shape[-1])
    torch.testing.assert_close(rows.squeeze(2), expected, atol=1e-5, rtol=1e-5)


def test_apply_conv_refuses_same_padding_on_rows() -> None:
    conv = nn.Conv1d(4, 4, 3, padding="same")
    with pytest.raises(ValueError, match="integer zero padding"):
        apply_conv(conv, torch.zeros(1, 4, 1, 10))


@pytest.mark.parametrize("resblock", ["1", "2"])
def test_generator_inference_layout_matches_training_layout(resblock: str) -> None:
    dilations = ((1, 3, 5), (1, 3, 5)) if resblock == "1" else ((1, 3), (1, 3))
    generator = Generator(16, resblock, (3, 7), dilations, (4, 2), 32, (8, 4), gin_channels=8, sample_rate=16000)
    randomize_parameters(generator, torch.Generator().manual_seed(1))
    latent = torch.randn(2, 16, 25)
    latent_before = latent.clone()
    f0 = torch.rand(2, 25) * 300 + 60
    speaker = torch.randn(2, 8, 1)
    plain = generator(latent, f0, g=speaker, add_noise=False)  # grad enabled: (B, C, T) path
    assert plain.requires_grad
    with torch.inference_mode():
        fast = generator(latent, f0, g=speaker, add_noise=False)  # (B, C, 1, T) channels-last path
    assert fast.shape == plain.shape == (2, 1, 25 * 8)
    torch.testing.assert_close(fast, plain.detach(), atol=1e-5, rtol=0)
    assert torch.equal(latent, latent_before)  # the in-place steps left the input alone


def test_generator_training_backward_still_works() -> None:
    generator = Generator(16, "1", (3,), ((1, 3),), (4, 2), 32, (8, 4), gin_channels=8, sample_rate=16000)
    latent = torch.randn(1, 16, 12, requires_grad=True)
    out = generator(latent, torch.full((1, 12), 200.0), g=torch.randn(1, 8, 1), add_noise=False)
    out.square().sum().backward()  # in-place ops on tensors autograd keeps would raise here
    assert latent.grad is not None and torch.isfinite(latent.grad).all()


def _dense_relative_attention_terms(query, p_attn, emb_k, emb_v, window):
    """The relative terms written out over all (i, j) pairs: the definition VITS implements."""
    length = query.shape[-2]
    offsets = torch.arange(length)[None, :] - torch.arange(length)[:, None]  # j - i
    inside = offsets.abs() <= window
    index = (offsets.clamp(-window, window) + window).reshape(-1)
    keys = emb_k[0, index].reshape(length, length, -1) * inside[..., None]  # (i, j, d)
    values = emb_v[0, index].reshape(length, length, -1) * inside[..., None]
    logits = torch.einsum("bhid,ijd->bhij", query, keys)
    mixed = torch.einsum("bhij,ijd->bhid", p_attn, values)
    return logits, mixed


@pytest.mark.parametrize("length", [1, 2, 10, 11, 12, 40])
def test_banded_relative_attention_matches_the_definition(length: int) -> None:
    window = 10
    generator = torch.Generator().manual_seed(length)
    query = torch.randn(2, 3, length, 8, generator=generator)
    p_attn = torch.softmax(torch.randn(2, 3, length, length, generator=generator), dim=-1)
    emb_k = torch.randn(1, 2 * window + 1, 8, generator=generator)
    emb_v = torch.randn(1, 2 * window + 1, 8, generator=generator)
    logits, mixed = _dense_relative_attention_terms(query, p_attn, emb_k, emb_v, window)

    scores = torch.zeros(2, 3, length, length)
    attentions._add_relative_logits(scores, query, emb_k, window)
    torch.testing.assert_close(scores, logits, atol=1e-5, rtol=1e-5)
    band = attentions._relative_weights(p_attn, window)
    torch.testing.assert_close(band @ emb_v, mixed, atol=1e-5, rtol=1e-5)


def test_encoder_gives_the_same_frames_with_or_without_padding_in_the_batch() -> None:
    """Item 0 alone (mask all ones: the mask is skipped) equals item 0 batched with a padded item."""
    torch.manual_seed(0)
    encoder = attentions.Encoder(16, 32, 2, 2, 3).eval()
    x = torch.randn(2, 16, 30)
    mask = torch.ones(2, 1, 30)
    mask[1, :, 22:] = 0
    with torch.no_grad():
        batched = encoder(x, mask)
        alone = encoder(x[:1], mask[:1])
        padded_alone = encoder(x[1:, :, :22], mask[1:, :, :22])
    torch.testing.assert_close(alone, batched[:1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded_alone, batched[1:, :, :22], atol=1e-5, rtol=1e-5)
    assert torch.count_nonzero(batched[1, :, 22:]) == 0


def test_rmvpe_channels_last_matches_the_plain_layout(tmp_path) -> None:
    predictor = RmvpePredictor(save_tiny_rmvpe(tmp_path / "rmvpe.pt", seed=3))
    weight = predictor.model.unet.encoder.layers[0].conv[0].conv[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    t = np.arange(4000) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(0).standard_normal(4000)).astype(
        np.float32
    )
    fast = predictor.salience(wave)
    predictor.model.to(memory_format=torch.contiguous_format)
    # A random network magnifies float32 rounding; the reference fixture holds the real tolerance (1e-5).
    torch.testing.assert_close(torch.from_numpy(fast), torch.from_numpy(predictor.salience(wave)), atol=1e-4, rtol=0)


def test_rmvpe_in_place_activations_leave_the_input_alone() -> None:
    model = E2E(RmvpeConfig(en_out_channels=2)).eval()
    mel = torch.randn(1, 128, 32)
    before = mel.clone()
    with torch.inference_mode():
        model(mel)
    assert torch.equal(mel, before)


def test_stage_times_observer_hears_every_start_and_end() -> None:
    events = []
    times = StageTimes(observer=lambda stage, entering: events.append((stage, entering)))
    with times.measure("f0"):
        pass
    with pytest.raises(RuntimeError), times.measure("synthesis"):
        raise RuntimeError("boom")
    assert events == [("f0", True), ("f0", False), ("synthesis", True), ("synthesis", False)]
    assert set(times.as_dict()) == set(STAGES)
    with pytest.raises(ValueError, match="unknown stage"):
        with times.measure("feature"):
            pass


def test_stage_times_adds_every_measurement_across_threads(monkeypatch) -> None:
    local = threading.local()

    def clock() -> float:  # per thread 1, 2, 3, ...: every measurement lasts exactly 1
        local.now = getattr(local, "now", 0) + 1
        return float(local.now)

    monkeypatch.setattr(pipeline.time, "perf_counter", clock)
    times = StageTimes()

    def work() -> None:
        for _ in range(500):
            with times.measure("features"):
                pass

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert times.features == 2000.0
    assert times.as_dict()["f0"] == 0.0
