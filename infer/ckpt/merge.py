"""Merge two voices into one: every weight is α·A + (1−α)·B (RVC's "model fusion", spec §9.5).

Compared with RVC: the sample rate, version and pitch setting come from the
voices instead of from controls that could contradict them, voices that do
not fit together are refused with the reason (RVC only said "architectures
are not the same"), G_*.pth checkpoints work as inputs (RVC read ``config``
from them before checking and failed, §11.10), and the result goes where the
user asks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from infer.checkpoints import SmallModel, write_small_model
from infer.ckpt.common import (
    CkptError,
    Progress,
    SavedVoice,
    as_small_model,
    check_writable,
    output_for,
    read_voice_weights,
    report,
)
from infer.models.config import tag_from_sample_rate

SPEAKER_KEY = "emb_g.weight"


class IncompatibleVoicesError(CkptError):
    """The two voices cannot be merged; the message says how they differ."""


def _check_compatible(a: SmallModel, b: SmallModel, names: tuple[str, str]) -> None:
    na, nb = names
    checks = [
        ("sample rate", tag_from_sample_rate(a.sample_rate), tag_from_sample_rate(b.sample_rate)),
        ("version", a.version, b.version),
        (
            "pitch guidance",
            "with pitch" if a.use_f0 else "without pitch",
            "with pitch" if b.use_f0 else "without pitch",
        ),
        ("content feature size", a.config.feature_dim, b.config.feature_dim),
    ]
    for what, va, vb in checks:
        if va != vb:
            raise IncompatibleVoicesError(
                f"Cannot merge '{na}' ({va}) with '{nb}' ({vb}): voices of a different {what} do not mix. "
                f"Pick two voices trained with the same {what}."
            )
    only_a, only_b = sorted(set(a.weight) - set(b.weight)), sorted(set(b.weight) - set(a.weight))
    if only_a or only_b:
        extra = f"'{na}' has {only_a[:3]}" if only_a else f"'{nb}' has {only_b[:3]}"
        raise IncompatibleVoicesError(
            f"Cannot merge '{na}' with '{nb}': their networks differ ({extra} that the other lacks). "
            "Only voices of the same architecture can be merged."
        )
    for key, tensor in a.weight.items():
        other = b.weight[key]
        if key != SPEAKER_KEY and tensor.shape != other.shape:
            raise IncompatibleVoicesError(
                f"Cannot merge '{na}' with '{nb}': '{key}' is {tuple(tensor.shape)} in one and "
                f"{tuple(other.shape)} in the other (models of different widths). Pick voices of the same size."
            )
    if a.weight[SPEAKER_KEY].shape[1] != b.weight[SPEAKER_KEY].shape[1]:
        raise IncompatibleVoicesError(f"Cannot merge '{na}' with '{nb}': their speaker embeddings differ in width.")


def _merged_metadata(a: SmallModel, b: SmallModel, weight_a: float, names: tuple[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "merged_from": [{"name": names[0], "weight": weight_a}, {"name": names[1], "weight": 1.0 - weight_a}],
        "sample_rate": a.sample_rate,
        "version": a.version,
    }
    for key in ("content_encoder", "f0_method"):
        if a.metadata.get(key) is not None and a.metadata.get(key) == b.metadata.get(key):
            metadata[key] = a.metadata[key]
    stats_a, stats_b = a.metadata.get("f0_stats"), b.metadata.get("f0_stats")
    if isinstance(stats_a, dict) and isinstance(stats_b, dict):
        # Pitch is heard on a log scale: mix the ranges geometrically with the same weight as the voices.
        shared = [k for k in ("median", "p5", "p95") if stats_a.get(k) and stats_b.get(k)]
        metadata["f0_stats"] = {
            k: math.exp(weight_a * math.log(stats_a[k]) + (1 - weight_a) * math.log(stats_b[k])) for k in shared
        }
    return metadata


def merge_small_models(
    a: SmallModel, b: SmallModel, weight_a: float = 0.5, *, names: tuple[str, str] = ("A", "B"), info: str = ""
) -> SmallModel:
    """``weight_a``·A + (1 − ``weight_a``)·B for every tensor, computed in float32 and stored as float16.

    Voices must share sample rate, version, pitch guidance, feature size and
    layer shapes (:class:`IncompatibleVoicesError` otherwise).  Speaker tables
    of different sizes are cut to the smaller one, as RVC does (a warning says
    so).  The result takes A's config; ``.warnings`` lists what to know.
    """
    if not 0.0 <= float(weight_a) <= 1.0:
        raise CkptError(f"The weight of '{names[0]}' must be between 0 and 1, got {weight_a}.")
    _check_compatible(a, b, names)
    warnings: list[str] = []
    rows_a, rows_b = a.weight[SPEAKER_KEY].shape[0], b.weight[SPEAKER_KEY].shape[0]
    rows = min(rows_a, rows_b)
    if rows_a != rows_b:
        warnings.append(f"'{names[0]}' has {rows_a} speaker slots and '{names[1]}' {rows_b}; the merge keeps {rows}.")
    encoders = (a.metadata.get("content_encoder"), b.metadata.get("content_encoder"))
    if None not in encoders and encoders[0] != encoders[1]:
        warnings.append(
            f"The voices were trained on different content encoders ({encoders[0]}, {encoders[1]}); "
            "the merge may sound poor with either."
        )
    alpha = float(weight_a)
    weight: dict[str, torch.Tensor] = {}
    for key, tensor_a in a.weight.items():
        tensor_b = b.weight[key]
        if key == SPEAKER_KEY:
            tensor_a, tensor_b = tensor_a[:rows], tensor_b[:rows]
        weight[key] = (alpha * tensor_a.float() + (1.0 - alpha) * tensor_b.float()).to(torch.float16)
    info = info or f"Merged: {alpha:g} × {names[0]} + {1 - alpha:g} × {names[1]}"
    config = a.config.with_(spk_embed_dim=int(rows))
    merged = SmallModel(weight, config, a.version, info, _merged_metadata(a, b, alpha, names))
    merged.warnings.extend(warnings)
    return merged


def _load(path: Path) -> SmallModel:
    obj, kind = read_voice_weights(path)
    return as_small_model(obj, kind, path)


def merge_voices(
    a: str | Path,
    b: str | Path,
    weight_a: float = 0.5,
    output: str | Path | None = None,
    *,
    info: str = "",
    name: str | None = None,
    weights_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> SavedVoice:
    """Merge the voices in files ``a`` and ``b`` and write the result atomically.

    Inputs are small models (``weights/*.pth``) or ``G_*.pth`` checkpoints
    (their rate and version come from their experiment folder or weights).
    ``output``: a name (``mix`` → ``<weights_dir>/mix.pth``) or a path, default
    ``<a>+<b>``; ``name`` instead is only ever a file name in ``weights_dir``
    (a name with a folder part is refused); an existing file is refused unless ``overwrite``.  Returns the
    written path, the merged model and warnings.  See :func:`merge_small_models`.
    """
    a, b = Path(a), Path(b)
    path = output_for(output, name, f"{a.stem}+{b.stem}", weights_dir)
    check_writable(path, overwrite)
    report(progress, 0.0, f"reading {a.name}")
    model_a = _load(a)
    report(progress, 0.3, f"reading {b.name}")
    model_b = _load(b)
    report(progress, 0.6, "merging")
    merged = merge_small_models(model_a, model_b, weight_a, names=(a.stem, b.stem), info=info)
    report(progress, 0.8, f"writing {path.name}")
    write_small_model(merged, path)
    report(progress, 1.0, "done")
    return SavedVoice(path, merged, [*model_a.warnings, *model_b.warnings, *merged.warnings])
