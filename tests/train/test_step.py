"""One D+G training step on tiny models: losses are finite and named, weights move, precision choice."""

from __future__ import annotations

import math

import pytest
import torch

from infer.models.discriminators import build_discriminator
from infer.models.synthesizer import Synthesizer
from tests.train.conftest import TINY_DISC, make_experiment
from train.checkpointing import make_scheduler
from train.data import TrainingDataset, collate
from train.experiment import ExperimentConfig
from train.filelist import read_filelist
from train.step import (
    Precision,
    StepSettings,
    TrainState,
    discriminator_step,
    generator_forward,
    generator_step,
    grad_norm,
    make_optimizer,
    resolve_precision,
    train_step,
)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _setup(tmp_path, use_f0: bool):
    exp = make_experiment(tmp_path, seconds=(0.9, 1.2), use_f0=use_f0, mute=False)
    config = ExperimentConfig.load(exp / "config.json")
    dataset = TrainingDataset(read_filelist(exp / "filelist.txt"), config.data, use_f0=use_f0)
    batch = collate([dataset[0], dataset[1]])
    torch.manual_seed(0)
    net_g = Synthesizer.from_config(config.model)
    net_d = build_discriminator(config.version, channel_divisor_s=TINY_DISC[0], channel_divisor_p=TINY_DISC[1])
    optim_g, optim_d = make_optimizer(net_g, config.train), make_optimizer(net_d, config.train)
    precision = Precision("cpu")
    state = TrainState(
        net_g,
        net_d,
        optim_g,
        optim_d,
        make_scheduler(optim_g, 0.999875, 1),
        make_scheduler(optim_d, 0.999875, 1),
        precision.make_scaler(),
    )
    settings = StepSettings(dataset.spectrogram, config.model.segment_size, 45.0, 1.0, precision, use_f0)
    return state, settings, batch


@pytest.mark.parametrize("use_f0", [True, False])
def test_one_step_changes_weights_with_finite_losses(tmp_path, use_f0):
    state, settings, batch = _setup(tmp_path, use_f0)
    before_g = {k: v.clone() for k, v in state.net_g.state_dict().items()}
    before_d = {k: v.clone() for k, v in state.net_d.state_dict().items()}
    losses, gen = train_step(state, settings, batch)
    assert state.global_step == 1
    for name in (
        "loss/d/total",
        "loss/g/total",
        "loss/g/gen",
        "loss/g/fm",
        "loss/g/mel",
        "loss/g/kl",
        "grad_norm_d",
        "grad_norm_g",
        "loss/d_r/0",
        "loss/d_g/8",
        "loss/g/8",
    ):
        assert name in losses and math.isfinite(losses[name].item()), name
    assert not any(t.requires_grad for t in losses.values())
    total = losses["loss/g/gen"] + losses["loss/g/fm"] + losses["loss/g/mel"] + losses["loss/g/kl"]
    torch.testing.assert_close(losses["loss/g/total"], total)
    assert losses["grad_norm_g"] > 0 and losses["grad_norm_d"] > 0
    seg = settings.segment_frames
    assert gen.y_hat.shape == gen.real_wave.shape == (2, 1, seg * 320)
    assert gen.real_mel.shape == gen.fake_mel.shape == (2, 80, seg)
    changed_g = [k for k, v in state.net_g.state_dict().items() if not torch.equal(v, before_g[k])]
    changed_d = [k for k, v in state.net_d.state_dict().items() if not torch.equal(v, before_d[k])]
    assert "enc_q.pre.weight" in changed_g and "dec.conv_pre.weight" in changed_g and "emb_g.weight" in changed_g
    assert len(changed_d) == len(before_d)  # every D parameter gets a gradient


def test_discriminator_step_leaves_generator_alone(tmp_path):
    state, settings, batch = _setup(tmp_path, True)
    gen = generator_forward(state, settings, batch)
    before = {k: v.clone() for k, v in state.net_g.state_dict().items()}
    d_losses = discriminator_step(state, settings, gen)
    assert all(torch.equal(v, before[k]) for k, v in state.net_g.state_dict().items())
    assert set(d_losses) >= {"loss/d/total", "grad_norm_d"}
    g_losses = generator_step(state, settings, gen)
    assert not all(torch.equal(v, before[k]) for k, v in state.net_g.state_dict().items())
    assert g_losses["loss/g/mel"] > 0


def test_real_mel_matches_the_spectrogram_slice(tmp_path):
    state, settings, batch = _setup(tmp_path, True)
    torch.manual_seed(5)
    gen = generator_forward(state, settings, batch)
    full = settings.spectrogram.mel_from_linear(batch.spec)
    # the same slice of the whole-item mel must appear somewhere in row 0 (start is random)
    starts = [
        s
        for s in range(batch.spec_lengths[0] - settings.segment_frames + 1)
        if torch.allclose(full[0, :, s : s + settings.segment_frames], gen.real_mel[0])
    ]
    assert len(starts) >= 1
    wave_slice = batch.wave[0, :, starts[0] * 320 : (starts[0] + settings.segment_frames) * 320]
    torch.testing.assert_close(gen.real_wave[0], wave_slice)


def test_grad_norm_is_the_total_l2_norm():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    assert grad_norm([a, b]).item() == pytest.approx(5.0)
    assert grad_norm([torch.nn.Parameter(torch.zeros(1))]).item() == 0.0


def test_precision_choice_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu).dtype is None
    assert resolve_precision("fp32", cpu).name == "fp32"
    assert not resolve_precision("auto", cpu).make_scaler().is_enabled()
    with pytest.raises(ValueError, match="CUDA"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="Unknown precision"):
        resolve_precision("fp8", cpu)


def test_scheduler_positions_learning_rate_by_epoch():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4)
    scheduler = make_scheduler(optimizer, 0.5, start_epoch=3)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.25)  # epoch e trains at lr·γ^(e-1)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.125)
    assert optimizer.param_groups[0]["initial_lr"] == 1e-4


def test_frozen_discriminator_gives_rvc_generator_update(tmp_path, monkeypatch):
    """G's update with D frozen equals RVC's (which also computed D's unused weight gradients)."""
    import contextlib
    import copy

    import train.step as step

    state, settings, batch = _setup(tmp_path, True)
    twin = copy.deepcopy(state)
    torch.manual_seed(3)
    ours = generator_step(state, settings, generator_forward(state, settings, batch))
    monkeypatch.setattr(step, "_frozen", lambda module: contextlib.nullcontext(module))
    torch.manual_seed(3)
    reference = generator_step(twin, settings, generator_forward(twin, settings, batch))
    torch.testing.assert_close(ours["loss/g/total"], reference["loss/g/total"])
    torch.testing.assert_close(ours["grad_norm_g"], reference["grad_norm_g"])
    for (name, ours_param), twin_param in zip(state.net_g.named_parameters(), twin.net_g.parameters()):
        torch.testing.assert_close(ours_param, twin_param, msg=name)
    assert all(p.grad is not None for p in twin.net_d.parameters())  # RVC's way leaves D gradients behind
    assert all(p.grad is None and p.requires_grad for p in state.net_d.parameters())
