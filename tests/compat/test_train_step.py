"""Three golden training steps of the reference trainer, replayed with our step (fixture README §E).

G and D are built at the reduced widths of ``meta.json``, loaded strictly from
the reference's own ``G_init.pth``/``D_init.pth`` and trained for three steps on
``batch.npz`` with :func:`train.step.train_step` after seeding torch's global
RNG as the reference did.  Every logged scalar, the random slice starts, the
step-1 per-parameter gradient norms and the weights after the last step must
match the reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from infer.checkpoints import read_checkpoint
from infer.models.config import preset
from infer.models.discriminators import build_discriminator
from infer.models.synthesizer import Synthesizer
from infer.safe_load import load_torch_file
from tests.conftest import fixture_path
from train.checkpointing import make_scheduler
from train.data import Batch
from train.spectrogram import Spectrogram
from train.step import Precision, StepSettings, TrainState, make_optimizer, train_step

pytestmark = pytest.mark.compat

SCALAR_RTOL = 1e-3
GRAD_NORM_RTOL = 1e-3
# A reference gradient norm below this fraction of the model's total gradient norm is an exact zero seen
# through float noise (e.g. attention key biases: softmax ignores a per-query constant).
ZERO_GRAD_FRACTION = 1e-8
WEIGHT_RTOL = 5e-2


@dataclass
class Replay:
    """What our trainer produced: per-step scalars and slice starts, step-1 gradient norms, final weights."""

    scalars: list[dict[str, float]]
    slice_starts: list[list[int]]
    grad_norms: dict[str, dict[str, float]]
    generator: dict[str, torch.Tensor]
    discriminator: dict[str, torch.Tensor]


@pytest.fixture(scope="module")
def step_dir() -> Path:
    return fixture_path("rvc-reference", "train_step", "v2_f0_40k")


@pytest.fixture(scope="module")
def meta(step_dir) -> dict:
    return json.loads((step_dir / "meta.json").read_text())


def _load_batch(path: Path) -> Batch:
    """``batch.npz`` as our :class:`Batch` (same field names)."""
    with np.load(path, allow_pickle=False) as arrays:
        return Batch(**{name: torch.from_numpy(arrays[name].copy()) for name in arrays.files})


def _build_models(meta: dict, step_dir: Path) -> tuple[nn.Module, nn.Module]:
    """Reduced-width G (with ``enc_q``) and D, loaded strictly from the reference's trainer checkpoints."""
    data = meta["data_hparams"]
    frames = meta["train_hparams"]["segment_size"] // data["hop_length"]
    assert frames == meta["segment_frames"]
    config = preset("v2", data["sampling_rate"], True, segment_size=frames, **meta["reduced_g_overrides"])
    net_g = Synthesizer.from_config(config)
    divisors = meta["reduced_d_channel_divisors"]
    net_d = build_discriminator("v2", channel_divisor_s=divisors["Conv1d"], channel_divisor_p=divisors["Conv2d"])
    for model, name in ((net_g, "G_init.pth"), (net_d, "D_init.pth")):
        model.load_state_dict(read_checkpoint(step_dir / name).model, strict=True)
    return net_g.train(), net_d.train()


def _record_grad_norms(store: dict[str, dict[str, float]]):
    """A gradient hook keeping each parameter's gradient L2 norm, per role, on the first call only."""

    def hook(role: str, model: nn.Module) -> None:
        if role in store:
            return
        store[role] = {
            name: float(torch.linalg.vector_norm(p.grad.double())) if p.grad is not None else 0.0
            for name, p in model.named_parameters()
        }

    return hook


@pytest.fixture(scope="module")
def replay(step_dir, meta) -> Replay:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _replay(step_dir, meta)
    finally:
        torch.set_num_threads(threads)


def _replay(step_dir: Path, meta: dict) -> Replay:
    train_hp = SimpleNamespace(**meta["train_hparams"])
    data = SimpleNamespace(**meta["data_hparams"])
    net_g, net_d = _build_models(meta, step_dir)
    optim_g, optim_d = make_optimizer(net_g, train_hp), make_optimizer(net_d, train_hp)
    precision = Precision("cpu")
    state = TrainState(
        net_g,
        net_d,
        optim_g,
        optim_d,
        make_scheduler(optim_g, train_hp.lr_decay, 1),
        make_scheduler(optim_d, train_hp.lr_decay, 1),
        precision.make_scaler(),
    )
    settings = StepSettings(
        Spectrogram.from_hparams(data), meta["segment_frames"], train_hp.c_mel, train_hp.c_kl, precision, True
    )
    batch = _load_batch(step_dir / "batch.npz")
    grad_norms: dict[str, dict[str, float]] = {}
    hook = _record_grad_norms(grad_norms)
    scalars, slice_starts = [], []
    torch.manual_seed(meta["seeds"]["global_rng_before_step_1"])
    for _ in meta["steps"]:
        losses, gen = train_step(state, settings, batch, on_gradients=hook)
        scalars.append({name: float(value) for name, value in losses.items()})
        slice_starts.append(gen.slice_starts.tolist())
    return Replay(scalars, slice_starts, grad_norms, net_g.state_dict(), net_d.state_dict())


def _relative_error(ours: float, reference: float) -> float:
    return abs(ours - reference) / max(abs(reference), 1e-12)


def test_models_load_strictly_from_reference_checkpoints(step_dir, meta):
    net_g, net_d = _build_models(meta, step_dir)
    for model, name in ((net_g, "G_init.pth"), (net_d, "D_init.pth")):
        saved = load_torch_file(step_dir / name)["model"]
        assert list(model.state_dict()) == list(saved)


def test_random_slice_starts_match(replay, meta):
    assert replay.slice_starts == [step["ids_slice"] for step in meta["steps"]]


@pytest.mark.parametrize("step_index", [0, 1, 2])
def test_logged_scalars_match(replay, meta, step_index):
    reference = meta["steps"][step_index]["scalars"]
    ours = replay.scalars[step_index]
    assert sorted(ours) == sorted(reference)
    wrong = {
        name: (ours[name], value)
        for name, value in reference.items()
        if _relative_error(ours[name], value) > SCALAR_RTOL
    }
    assert not wrong, f"step {step_index + 1}: (ours, reference) {wrong}"


@pytest.mark.parametrize("role", ["g", "d"])
def test_step1_gradient_norms_match(replay, meta, role):
    reference = meta["steps"][0][f"grad_norms_{role}"]
    ours = replay.grad_norms[role]
    assert sorted(ours) == sorted(reference)
    noise_floor = ZERO_GRAD_FRACTION * meta["steps"][0]["scalars"][f"grad_norm_{role}"]
    exact_zeros = {name for name, value in reference.items() if value < noise_floor}
    assert len(exact_zeros) < len(reference) // 10
    assert {name for name in exact_zeros if ours[name] >= noise_floor} == set()
    wrong = {
        name: (ours[name], value)
        for name, value in reference.items()
        if name not in exact_zeros and _relative_error(ours[name], value) > GRAD_NORM_RTOL
    }
    assert not wrong, f"{len(wrong)} of {len(reference)} gradient norms differ (ours, reference): {wrong}"


@pytest.mark.parametrize("role", ["G", "D"])
def test_weights_after_three_steps_match(replay, step_dir, role):
    reference = load_torch_file(step_dir / f"{role}_after.pt")
    ours = replay.generator if role == "G" else replay.discriminator
    assert sorted(ours) == sorted(reference)
    wrong = {}
    for name, value in reference.items():
        error = torch.linalg.vector_norm(ours[name].double() - value.double())
        scale = torch.linalg.vector_norm(value.double()).clamp_min(1e-12)
        if error / scale > WEIGHT_RTOL:
            wrong[name] = float(error / scale)
    assert not wrong, f"relative L2 error per tensor: {wrong}"
