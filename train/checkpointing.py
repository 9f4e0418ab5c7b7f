"""G_/D_ checkpoints of an experiment: find the latest pair, save, resume, load pretrained weights, export voices.

Files keep RVC's format (spec §1.4: ``model``, ``iteration`` = epoch,
``optimizer``, ``learning_rate`` = the initial rate) plus one extra key with
our resume details, which RVC ignores.  Fixed on purpose (spec §11.2 item 9):
the latest pair is chosen by the epoch stored in the files, not by the digits
of the path; resuming continues at saved epoch + 1 instead of retraining it;
a pretrained file that does not fit says why.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from infer.assets import asset_path, pretrained_paths
from infer.checkpoints import TrainCheckpoint, make_small_model, read_checkpoint, write_checkpoint, write_small_model
from infer.safe_load import ModelFileError, load_torch_file

log = logging.getLogger(__name__)

LATEST_ONLY_STEP = 2333333  # RVC's file name tag when only the latest checkpoint is kept
RESUME_KEY = "rvc_studio"
_CHECKPOINT_NAME = re.compile(r"^G_(\d+)\.pth$")
Logger = Callable[[str], None]


class PretrainedMismatchError(ModelFileError):
    """A pretrained G/D does not fit the model being trained (another rate, version or pitch setting)."""


@dataclass(frozen=True)
class CheckpointPair:
    """A G_/D_ pair and the epoch stored in it."""

    generator: Path
    discriminator: Path
    epoch: int


def checkpoint_paths(exp_dir: Path, global_step: int, latest_only: bool) -> tuple[Path, Path]:
    """``G_<step>.pth``/``D_<step>.pth``, or ``G_2333333.pth``/``D_2333333.pth`` when keeping the latest only."""
    tag = LATEST_ONLY_STEP if latest_only else int(global_step)
    return Path(exp_dir) / f"G_{tag}.pth", Path(exp_dir) / f"D_{tag}.pth"


def stored_epoch(path: Path) -> int | None:
    """The epoch (``iteration``) saved in a checkpoint, read without loading its tensors; None if unreadable."""
    try:
        obj = load_torch_file(path, map_location="meta")
        return int(obj["iteration"])
    except (ModelFileError, KeyError, TypeError, ValueError) as exc:
        log.warning("Ignoring checkpoint '%s': %s", path, exc)
        return None


def find_latest_pair(exp_dir: Path) -> CheckpointPair | None:
    """The readable G_/D_ pair with the highest stored epoch (ties: the newer file); None if there is none."""
    candidates: list[tuple[int, float, CheckpointPair]] = []
    for g_path in Path(exp_dir).glob("G_*.pth"):
        match = _CHECKPOINT_NAME.match(g_path.name)
        d_path = g_path.with_name(f"D_{match.group(1)}.pth") if match else None
        if d_path is None or not d_path.is_file():
            continue
        g_epoch, d_epoch = stored_epoch(g_path), stored_epoch(d_path)
        if g_epoch is None or d_epoch is None:
            continue
        if g_epoch != d_epoch:
            log.warning(
                "'%s' (epoch %d) and '%s' (epoch %d) differ: a save was interrupted; using epoch %d.",
                g_path.name,
                g_epoch,
                d_path.name,
                d_epoch,
                min(g_epoch, d_epoch),
            )
        pair = CheckpointPair(g_path, d_path, min(g_epoch, d_epoch))
        candidates.append((pair.epoch, g_path.stat().st_mtime, pair))
    return max(candidates, key=lambda c: (c[0], c[1]))[2] if candidates else None


def save_pair(
    exp_dir: Path,
    generator: nn.Module,
    discriminator: nn.Module,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    *,
    epoch: int,
    global_step: int,
    learning_rate: float,
    latest_only: bool,
    resume_info: dict[str, Any] | None = None,
) -> CheckpointPair:
    """Write D then G atomically; a kill at any moment leaves the previous pair loadable."""
    g_path, d_path = checkpoint_paths(exp_dir, global_step, latest_only)
    extra = {RESUME_KEY: {"format_version": 1, "global_step": int(global_step), **(resume_info or {})}}
    for model, optimizer, path in ((discriminator, optimizers[1], d_path), (generator, optimizers[0], g_path)):
        ckpt = TrainCheckpoint(
            dict(model.state_dict()), int(epoch), optimizer.state_dict(), float(learning_rate), extra
        )
        write_checkpoint(ckpt, path)
    return CheckpointPair(g_path, d_path, int(epoch))


def load_tolerant(model: nn.Module, saved: dict[str, torch.Tensor], say: Logger) -> list[str]:
    """Load what fits (same key and shape); keep the fresh value elsewhere.  Returns the keys kept fresh."""
    state = model.state_dict()
    fresh: list[str] = []
    for key, value in state.items():
        other = saved.get(key)
        if other is None:
            say(f"{key} is not in the checkpoint")
        elif tuple(other.shape) != tuple(value.shape):
            say(f"shape-{key}-mismatch|need-{tuple(value.shape)}|get-{tuple(other.shape)}")
        else:
            state[key] = other
            continue
        fresh.append(key)
    model.load_state_dict(state, strict=False)
    return fresh


def load_for_resume(model: nn.Module, optimizer: torch.optim.Optimizer, path: Path, say: Logger) -> TrainCheckpoint:
    """Resume ``model`` and ``optimizer`` from a G_/D_ file (RVC's shape-tolerant load).

    The optimizer state is restored only when every weight fitted.
    """
    ckpt = read_checkpoint(path)
    fresh = load_tolerant(model, ckpt.model, say)
    if ckpt.optimizer and not fresh:
        try:
            optimizer.load_state_dict(ckpt.optimizer)
        except (ValueError, KeyError, RuntimeError) as exc:
            say(f"Optimizer state of '{path}' not restored ({exc}); starting it afresh.")
    elif fresh:
        say(f"{len(fresh)} weights of '{path}' did not fit and start fresh; the optimizer state was not restored.")
    say(f"Loaded checkpoint '{path}' (epoch {ckpt.iteration})")
    return ckpt


def load_pretrained(model: nn.Module, path: Path, role: str, config) -> None:
    """Strictly load a pretrained ``G`` or ``D`` (its ``model`` dict only) for an :class:`ExperimentConfig`.

    Raises :class:`PretrainedMismatchError` naming the keys that differ and what the file is for.
    """
    path = Path(path)
    ckpt = read_checkpoint(path)
    wanted = "generator" if role == "G" else "discriminator"
    if ckpt.kind != wanted:
        raise PretrainedMismatchError(
            f"'{path}' is a {ckpt.kind} checkpoint, but it was given as the pretrained "
            f"{wanted} (pretrained {role}). Swap the two paths."
        )
    expected = model.state_dict()
    missing = [k for k in expected if k not in ckpt.model]
    unexpected = [k for k in ckpt.model if k not in expected]
    wrong = [k for k, v in expected.items() if k in ckpt.model and ckpt.model[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise PretrainedMismatchError(
            _mismatch_message(path, role, config, ckpt.model, expected, missing, unexpected, wrong)
        )
    model.load_state_dict(ckpt.model, strict=True)


def _mismatch_message(path, role, config, saved, expected, missing, unexpected, wrong) -> str:
    reason = "another sample rate or version"
    phone = saved.get("enc_p.emb_phone.weight")
    if role == "G" and phone is not None and phone.shape[1] != expected["enc_p.emb_phone.weight"].shape[1]:
        reason = (
            f"models with {phone.shape[1]}-dim content features (this {config.version} model uses "
            f"{config.model.feature_dim})"
        )
    elif role == "G" and ("enc_p.emb_pitch.weight" in saved) != ("enc_p.emb_pitch.weight" in expected):
        reason = "a model " + ("with" if "enc_p.emb_pitch.weight" in saved else "without") + " pitch guidance"
    elif role == "D" and {k.split(".")[1] for k in saved} != {k.split(".")[1] for k in expected}:
        reason = "another version (v1 and v2 discriminators have different periods)"
    shown = [f"{k} {tuple(saved[k].shape)} vs {tuple(expected[k].shape)}" for k in wrong[:3]]
    shown += [f"missing {k}" for k in missing[:3]] + [f"unexpected {k}" for k in unexpected[:3]]
    generator, discriminator = pretrained_paths(config.version, config.sample_rate, config.use_f0)
    default = asset_path(generator if role == "G" else discriminator)
    return (
        f"Pretrained {role} '{path}' does not fit this {config.describe()} model: it is for {reason} "
        f"({len(missing) + len(unexpected) + len(wrong)} keys differ: {'; '.join(shown)}). "
        f"Use the matching pretrained file (default: '{default}') or none."
    )


def make_scheduler(optimizer: torch.optim.Optimizer, gamma: float, start_epoch: int):
    """RVC's per-epoch ExponentialLR, positioned so that epoch e trains at initial_lr · gamma^(e−1)."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    rates = [group["initial_lr"] * gamma ** (start_epoch - 1) for group in optimizer.param_groups]
    for group, rate in zip(optimizer.param_groups, rates):
        group["lr"] = rate
    state = scheduler.state_dict()
    state.update(last_epoch=start_epoch - 1, _last_lr=rates)
    scheduler.load_state_dict(state)
    return scheduler


def f0_statistics(f0_files: Iterable[Path]) -> dict[str, float] | None:
    """Median, 5th and 95th percentile (Hz) of the voiced frames in ``2b-f0nsf`` files; None if < 10 voiced."""
    voiced = [values[values > 0] for values in (np.load(p, allow_pickle=False).ravel() for p in f0_files)]
    values = np.concatenate(voiced) if voiced else np.zeros(0)
    if values.size < 10:
        return None
    p5, median, p95 = np.percentile(values, [5, 50, 95])
    return {"median": float(median), "p5": float(p5), "p95": float(p95)}


def export_voice(generator: nn.Module, config, path: Path, *, epoch: int, f0_stats: dict | None) -> Path:
    """Write a small model (fp16 weights without ``enc_q``, RVC's keys, ``info="<epoch>epoch"``) with our metadata."""
    metadata = {
        "f0_stats": f0_stats,
        "f0_method": config.f0_method,
        "content_encoder": config.content_encoder,
        "epochs": int(epoch),
        "sample_rate": int(config.sample_rate),
        "version": config.version,
    }
    small = make_small_model(
        generator.state_dict(),
        config.model.with_(segment_size=32),
        config.version,
        info=f"{epoch}epoch",
        metadata=metadata,
    )
    return write_small_model(small, path)
