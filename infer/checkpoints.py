"""RVC's model files: small (inference) models and full G_/D_ training checkpoints.

Formats follow rvc-spec.md §1.3/§1.4.  We read every variant RVC and its forks
wrote (no ``version``/``f0`` keys, parametrization weight-norm names, an int
``sr``, any speaker count) and write files RVC itself loads: the same keys in
the trainer's order, with our own metadata only as one extra key.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from infer.atomic import atomic_torch_save
from infer.models.config import SynthesizerConfig, sample_rate_from_tag, tag_from_sample_rate
from infer.models.weight_norm import rename_parametrized_keys
from infer.safe_load import ModelFileError, load_torch_file

METADATA_KEY = "rvc_studio"
METADATA_VERSION = 1
_SMALL_MODEL_KEYS = ("weight", "config", "info", "sr", "f0", "version")
_CHECKPOINT_KEYS = ("model", "iteration", "optimizer", "learning_rate")
_SUPPORTED_VOCODERS = ("HiFi-GAN", "hifigan", "")


def file_kind(obj: Any) -> str:
    """Classify a loaded file: ``"small_model"``, ``"generator"``, ``"discriminator"`` or ``"unknown"``."""
    if not isinstance(obj, Mapping):
        return "unknown"
    if "weight" in obj and "config" in obj:
        return "small_model"
    model = obj.get("model")
    if isinstance(model, Mapping) and model:
        keys = list(model.keys())
        if any(str(k).startswith(("enc_p.", "dec.", "flow.", "emb_g.")) for k in keys):
            return "generator"
        if any(str(k).startswith("discriminators.") for k in keys):
            return "discriminator"
    return "unknown"


def _strip_module_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DDP's ``module.`` prefix if every key has it."""
    keys = list(state.keys())
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def normalize_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """RVC key names: legacy weight-norm names, no DDP prefix."""
    return rename_parametrized_keys(_strip_module_prefix(state))


@dataclass
class SmallModel:
    """A shareable voice model: generator weights (no posterior encoder) plus its config."""

    weight: dict[str, torch.Tensor]
    config: SynthesizerConfig
    version: str = "v2"
    info: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def use_f0(self) -> bool:
        return self.config.use_f0

    @property
    def n_speakers(self) -> int:
        return int(self.weight["emb_g.weight"].shape[0])


def count_non_finite(weights: Mapping[str, Any]) -> tuple[int, int]:
    """``(NaN or infinite values, all values)`` over the floating-point tensors of ``weights``.

    A float32 sum per tensor finds the clean ones fast; only a tensor whose
    sum is not finite is counted value by value (a huge but finite tensor
    whose sum overflows counts 0).
    """
    bad = total = 0
    for tensor in weights.values():
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            continue
        total += tensor.numel()
        accumulate = torch.float64 if tensor.dtype == torch.float64 else torch.float32
        if not math.isfinite(float(tensor.sum(dtype=accumulate))):
            bad += int((~torch.isfinite(tensor)).sum())
    return bad, total


def check_finite_weights(weights: Mapping[str, Any], where: str, remedy: str) -> None:
    """Raise :class:`ModelFileError` naming ``where`` if any weight is NaN or infinite."""
    bad, total = count_non_finite(weights)
    if bad:
        raise ModelFileError(
            f"{where} has NaN or infinite weights ({bad} of {total} values): the file is damaged or was saved "
            f"from a diverged training. {remedy}"
        )


def _require_weight(weight: Mapping[str, Any], key: str, path: Path) -> torch.Tensor:
    value = weight.get(key)
    if not isinstance(value, torch.Tensor):
        raise ModelFileError(f"'{path}' is not a usable RVC voice model: its weights lack '{key}'.")
    return value


def small_model_from_dict(obj: Mapping[str, Any], path: str | Path = "<memory>") -> SmallModel:
    """Interpret a loaded small-model dict (see :func:`read_small_model`)."""
    path = Path(path)
    vocoder = str(obj.get("vocoder", "") or "")
    if vocoder not in _SUPPORTED_VOCODERS:
        raise ModelFileError(
            f"'{path}' uses the '{vocoder}' vocoder (an Applio-only architecture). RVC Studio runs HiFi-GAN "
            "models, like RVC; retrain or pick an RVC-compatible model."
        )
    weight = {k: v for k, v in normalize_state_dict(obj["weight"]).items() if "enc_q" not in k}
    emb_g = _require_weight(weight, "emb_g.weight", path)
    emb_phone = _require_weight(weight, "enc_p.emb_phone.weight", path)
    has_pitch = "enc_p.emb_pitch.weight" in weight
    warnings: list[str] = []
    declared_f0 = obj.get("f0", 1)  # very old files have no f0 key: RVC defaults to 1
    if bool(int(declared_f0)) != has_pitch:
        warnings.append(
            f"'{path}' says f0={declared_f0} but its weights are those of a model "
            f"{'with' if has_pitch else 'without'} pitch guidance; using the weights."
        )
    config_list = list(obj["config"])
    if len(config_list) == 17:  # some forks leave out the sample rate: take it from the "sr" field
        config_list.append(obj.get("sr", 40000))
    try:
        config = SynthesizerConfig.from_rvc_list(config_list, feature_dim=int(emb_phone.shape[1]), use_f0=has_pitch)
        config = config.with_(spk_embed_dim=int(emb_g.shape[0]))
    except (ValueError, TypeError, IndexError, ArithmeticError) as exc:
        raise ModelFileError(
            f"'{path}' has an unusable model config: {exc}. The file is damaged or was written by another "
            "tool; extract it again from its training checkpoint, or download it again."
        ) from exc
    version = str(obj.get("version") or "v1")  # very old files have no version: RVC defaults to v1
    if version not in ("v1", "v2"):
        raise ModelFileError(f"'{path}' has an unknown model version {version!r}; expected v1 or v2.")
    metadata = obj.get(METADATA_KEY)
    if not isinstance(metadata, Mapping) or int(metadata.get("format_version", 0)) > METADATA_VERSION:
        if metadata is not None:
            warnings.append(f"'{path}' has RVC Studio metadata from a newer version; it was ignored.")
        metadata = {}
    extra = {k: v for k, v in obj.items() if k not in (*_SMALL_MODEL_KEYS, METADATA_KEY)}
    return SmallModel(weight, config, version, str(obj.get("info", "") or ""), dict(metadata), extra, warnings)


def read_small_model(path: str | Path) -> SmallModel:
    """Read ``weights/<name>.pth``; a G_/D_ checkpoint or other file gives a clear :class:`ModelFileError`."""
    path = Path(path)
    obj = load_torch_file(path)
    kind = file_kind(obj)
    if kind == "generator":
        raise ModelFileError(
            f"'{path}' is a training checkpoint (G_*.pth), not a voice model. Extract a small model from it "
            "first: ckpt tab → 'Extract', or `python -m infer ckpt extract` — then use the file it writes in weights/."
        )
    if kind == "discriminator":
        raise ModelFileError(
            f"'{path}' is a discriminator checkpoint (D_*.pth), which only training uses. "
            "Use the voice model in weights/ (or extract one from the matching G_*.pth)."
        )
    if kind != "small_model":
        raise ModelFileError(f"'{path}' is not an RVC voice model (no 'weight'/'config' entries).")
    return small_model_from_dict(obj, path)


def make_small_model(
    state_dict: Mapping[str, torch.Tensor],
    config: SynthesizerConfig,
    version: str,
    info: str = "",
    metadata: Mapping[str, Any] | None = None,
) -> SmallModel:
    """Build a small model from a generator state dict: drop ``enc_q``, cast to float16."""
    if version not in ("v1", "v2"):
        raise ValueError(f"version must be 'v1' or 'v2', got {version!r}")
    weight = {
        k: v.detach().to("cpu", torch.float16) for k, v in normalize_state_dict(state_dict).items() if "enc_q" not in k
    }
    return SmallModel(weight, config, version, info, dict(metadata or {}))


def small_model_to_dict(model: SmallModel) -> OrderedDict[str, Any]:
    """The dict RVC's trainer writes (key order weight, config, info, sr, f0, version) + our metadata."""
    out: OrderedDict[str, Any] = OrderedDict()
    out["weight"] = dict(model.weight)
    out["config"] = model.config.to_rvc_list()
    out["info"] = model.info
    out["sr"] = tag_from_sample_rate(model.config.sample_rate)
    out["f0"] = int(model.config.use_f0)
    out["version"] = model.version
    out.update(model.extra)
    if model.metadata:
        out[METADATA_KEY] = {"format_version": METADATA_VERSION, **model.metadata}
    return out


def write_small_model(model: SmallModel, path: str | Path) -> Path:
    """Write atomically in RVC's small-model format; returns ``path``."""
    return atomic_torch_save(small_model_to_dict(model), path)


@dataclass
class TrainCheckpoint:
    """A full G_ or D_ file: state dict, epoch (RVC calls it ``iteration``), optimizer state."""

    model: dict[str, torch.Tensor]
    iteration: int = 1
    optimizer: dict[str, Any] | None = None
    learning_rate: float = 1e-4
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return file_kind({"model": self.model})


def read_checkpoint(path: str | Path) -> TrainCheckpoint:
    """Read a ``G_*.pth``/``D_*.pth`` (or pretrained ``f0G40k.pth``); clear error for other files."""
    path = Path(path)
    obj = load_torch_file(path)
    if file_kind(obj) == "small_model":
        raise ModelFileError(
            f"'{path}' is a small voice model, not a training checkpoint; it holds no discriminator or "
            "posterior encoder, so training cannot start from it. Use a G_*.pth/D_*.pth pair."
        )
    if file_kind(obj) not in ("generator", "discriminator"):
        raise ModelFileError(f"'{path}' is not an RVC training checkpoint (no 'model' state dict).")
    model = normalize_state_dict(obj["model"])
    check_finite_weights(
        model, f"'{path}'", "Use an earlier checkpoint of the same training, or train again from the last good one."
    )
    learning_rate = obj.get("learning_rate")
    return TrainCheckpoint(
        model=model,
        iteration=int(obj["iteration"]) if obj.get("iteration") is not None else 1,
        optimizer=obj.get("optimizer"),
        learning_rate=float(learning_rate) if learning_rate is not None else 1e-4,
        extra={k: v for k, v in obj.items() if k not in _CHECKPOINT_KEYS},
    )


def write_checkpoint(ckpt: TrainCheckpoint, path: str | Path) -> Path:
    """Write atomically in RVC's checkpoint format (model, iteration, optimizer, learning_rate)."""
    out: dict[str, Any] = {
        "model": {k: v.detach().cpu() for k, v in ckpt.model.items()},
        "iteration": int(ckpt.iteration),
        "optimizer": ckpt.optimizer,
        "learning_rate": float(ckpt.learning_rate),
    }
    out.update(ckpt.extra)
    return atomic_torch_save(out, path)


def sample_rate_tag(value: str | int) -> str:
    """Normalise a sample rate given as ``"40k"``, ``40000`` or ``"40000"`` to its tag."""
    return tag_from_sample_rate(sample_rate_from_tag(value))
