"""Extract a small (inference) model from a G_ training checkpoint.

RVC's "ckpt → extract" writes a hard-coded config per sample rate and version
(spec §9.5), which is wrong for any model whose widths differ from the preset.
We read the widths from the weights instead: for standard full-size models the
result is identical to RVC's table, and for other widths the config describes
the weights that are actually in the file.  ``rvc_table_config=True`` writes
RVC's table anyway (byte-for-byte what RVC's tab writes).

Sample rate and version come, in this order, from the caller, from the
experiment folder holding the checkpoint (``config.json``, or the first line of
``train.log`` as RVC's tab reads it, FAQ Q12), or from the weights themselves.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infer.checkpoints import (
    SmallModel,
    TrainCheckpoint,
    make_small_model,
    normalize_state_dict,
    read_checkpoint,
    write_small_model,
)
from infer.ckpt.common import (
    CkptError,
    Progress,
    SavedVoice,
    check_writable,
    output_for,
    report,
    safe_voice_name,
)
from infer.models.config import FEATURE_DIMS, SynthesizerConfig, preset, sample_rate_from_tag
from infer.safe_load import ModelFileError

_MAX_F0_FILES = 400  # enough for a stable pitch range; bounds the time on big datasets


def _count(weight: Mapping[str, torch.Tensor], prefix: str) -> int:
    indices = {int(k[len(prefix) :].split(".")[0]) for k in weight if k.startswith(prefix)}
    return max(indices) + 1 if indices else 0


def config_from_weights(weight: Mapping[str, torch.Tensor], version: str, sample_rate: int | str) -> SynthesizerConfig:
    """The synthesizer config that fits ``weight`` (a generator state dict).

    Widths, layer counts and kernel sizes are read from tensor shapes; what
    shapes cannot tell (attention heads, upsample strides, resblock dilations)
    comes from RVC's preset for ``version``/``sample_rate``.
    """
    try:
        emb_phone = weight["enc_p.emb_phone.weight"]
        base = preset(version, sample_rate, use_f0="enc_p.emb_pitch.weight" in weight)
        n_ups = _count(weight, "dec.ups.")
        if n_ups != len(base.upsample_rates):
            raise ModelFileError(
                f"The generator has {n_ups} upsampling stages but a {version} model at {sample_rate} has "
                f"{len(base.upsample_rates)}: the sample rate or version chosen does not match this checkpoint."
            )
        spec = weight.get("enc_q.pre.weight")
        return base.with_(
            spec_channels=int(spec.shape[1]) if spec is not None else base.spec_channels,
            inter_channels=int(weight["enc_p.proj.weight"].shape[0]) // 2,
            hidden_channels=int(emb_phone.shape[0]),
            filter_channels=int(weight["enc_p.encoder.ffn_layers.0.conv_1.weight"].shape[0]),
            n_layers=_count(weight, "enc_p.encoder.attn_layers."),
            kernel_size=int(weight["enc_p.encoder.ffn_layers.0.conv_1.weight"].shape[2]),
            upsample_initial_channel=int(weight["dec.conv_pre.weight"].shape[0]),
            upsample_kernel_sizes=tuple(int(weight[f"dec.ups.{i}.weight_v"].shape[2]) for i in range(n_ups)),
            spk_embed_dim=int(weight["emb_g.weight"].shape[0]),
            gin_channels=int(weight["emb_g.weight"].shape[1]),
            feature_dim=int(emb_phone.shape[1]),
        )
    except KeyError as exc:
        raise ModelFileError(f"The generator weights lack {exc}; this is not an RVC generator checkpoint.") from exc


@dataclass(frozen=True)
class ExperimentSettings:
    """What an experiment folder says about the model trained in it (any field may be unknown)."""

    folder: Path
    source: str  # "config.json" or "train.log"
    name: str
    version: str | None = None
    sample_rate: int | None = None
    use_f0: bool | None = None
    f0_method: str | None = None
    content_encoder: str | None = None


def _from_config_json(folder: Path) -> ExperimentSettings | None:
    path = folder / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    ours = data.get("rvc_studio")
    if isinstance(ours, dict):
        return ExperimentSettings(
            folder,
            "config.json",
            str(ours.get("name") or folder.name),
            ours.get("version"),
            int(ours["sample_rate"]) if ours.get("sample_rate") else None,
            bool(ours["use_f0"]) if ours.get("use_f0") is not None else None,
            ours.get("f0_method"),
            ours.get("content_encoder"),
        )
    rate = (data.get("data") or {}).get("sampling_rate") if isinstance(data.get("data"), dict) else None
    if rate:  # RVC's own config.json: only the rate; the version comes from train.log or the weights
        return ExperimentSettings(folder, "config.json", folder.name, sample_rate=int(rate))
    return None


def _from_train_log(folder: Path) -> ExperimentSettings | None:
    """RVC's auto-fill: the first train.log line ends with the hyper-parameter dict (read as a literal, never run)."""
    try:
        with open(folder / "train.log", encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
        hps = ast.literal_eval(first.rstrip("\n").split("\t")[-1])
    except (OSError, ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(hps, dict):
        return None
    try:
        rate = sample_rate_from_tag(hps["sample_rate"]) if hps.get("sample_rate") else None
    except ValueError:
        rate = None
    if_f0 = hps.get("if_f0")
    return ExperimentSettings(
        folder,
        "train.log",
        str(hps.get("name") or folder.name),
        hps.get("version"),
        rate,
        bool(int(if_f0)) if if_f0 is not None else None,
    )


def find_experiment_settings(checkpoint_path: str | Path) -> ExperimentSettings | None:
    """Settings of the experiment a ``logs/<exp>/G_*.pth`` belongs to, or None when its folder has no clue.

    ``config.json`` (RVC Studio's) is complete; RVC's ``config.json`` gives only
    the rate, so ``train.log`` fills what it lacks.
    """
    folder = Path(checkpoint_path).parent
    from_json, from_log = _from_config_json(folder), _from_train_log(folder)
    if from_json is None or from_log is None:
        return from_json or from_log
    return ExperimentSettings(
        folder,
        from_json.source,
        from_json.name,
        from_json.version or from_log.version,
        from_json.sample_rate or from_log.sample_rate,
        from_json.use_f0 if from_json.use_f0 is not None else from_log.use_f0,
        from_json.f0_method,
        from_json.content_encoder,
    )


def settings_from_weights(weight: Mapping[str, torch.Tensor]) -> tuple[str | None, int | None]:
    """``(version, sample_rate)`` told by a G_ state dict alone, each None when the shapes cannot tell.

    The version is the content width (256 → v1, 768 → v2).  The rate needs the
    posterior encoder (G_ files have it): 513 spectrogram bins mean 32k, else
    the upsampling kernels separate 40k ([16,16,4,4]) from 48k.
    """
    emb = weight.get("enc_p.emb_phone.weight")
    version = {dim: v for v, dim in FEATURE_DIMS.items()}.get(int(emb.shape[1])) if emb is not None else None
    spec = weight.get("enc_q.pre.weight")
    kernels = [
        int(weight[f"dec.ups.{i}.weight_v"].shape[2])
        for i in range(_count(weight, "dec.ups."))
        if f"dec.ups.{i}.weight_v" in weight
    ]
    if spec is None or not kernels:
        return version, None
    if int(spec.shape[1]) == 513:
        return version, 32000
    return version, 40000 if kernels == [16, 16, 4, 4] else 48000


def pitch_range(f0_folder: Path) -> dict[str, float] | None:
    """Median, 5th and 95th percentile (Hz) of the voiced frames in a ``2b-f0nsf`` folder; None if < 10 voiced."""
    files = sorted(f0_folder.glob("*.npy"))[:_MAX_F0_FILES] if f0_folder.is_dir() else []
    voiced = []
    for path in files:
        try:
            values = np.load(path, allow_pickle=False).ravel()
        except (OSError, ValueError):
            continue
        voiced.append(values[values > 0])
    values = np.concatenate(voiced) if voiced else np.zeros(0)
    if values.size < 10:
        return None
    p5, median, p95 = np.percentile(values, [5, 50, 95])
    return {"median": float(median), "p5": float(p5), "p95": float(p95)}


def _checkpoint(checkpoint: str | Path | TrainCheckpoint | Mapping[str, Any]) -> TrainCheckpoint:
    if isinstance(checkpoint, TrainCheckpoint):
        return checkpoint
    if isinstance(checkpoint, Mapping):  # an already loaded G_ dict
        return TrainCheckpoint(normalize_state_dict(checkpoint["model"]), int(checkpoint.get("iteration") or 1))
    return read_checkpoint(checkpoint)


def extract_small_model(
    checkpoint: str | Path | TrainCheckpoint | Mapping[str, Any],
    *,
    version: str | None = None,
    sample_rate: int | str | None = None,
    info: str = "",
    rvc_table_config: bool = False,
    source_path: str | Path | None = None,
) -> SmallModel:
    """Small model from a G_ checkpoint: ``enc_q`` dropped, weights cast to float16.

    ``version``/``sample_rate`` default to the experiment's (found beside the
    checkpoint, or beside ``source_path`` for an in-memory checkpoint), then to
    what the weights tell; pitch guidance is always read from the weights.
    ``info`` defaults to RVC's "Extracted model.".  When the experiment folder
    is found, our metadata (epochs, f0 method, content encoder, the training
    pitch range) is added; otherwise the file holds exactly RVC's keys.
    ``rvc_table_config=True`` stores RVC's hard-coded config for the
    rate/version even when it does not describe the weights (RVC's behaviour;
    such a file may not load).  Raises :class:`CkptError`/``ModelFileError``.
    """
    path = Path(source_path or checkpoint) if isinstance(source_path or checkpoint, (str, Path)) else None
    ckpt = _checkpoint(checkpoint)
    if ckpt.kind != "generator":
        where = f"'{path}'" if path else "The checkpoint"
        raise ModelFileError(f"{where} is not a generator checkpoint: extraction needs a G_*.pth, not a D_*.pth.")
    experiment = find_experiment_settings(path) if path else None
    weight_version, weight_rate = settings_from_weights(ckpt.model)
    version = version or (experiment.version if experiment else None) or weight_version
    rate = sample_rate or (experiment.sample_rate if experiment else None) or weight_rate
    if version is None or rate is None:
        where = f"'{path}'" if path else "the checkpoint"
        raise CkptError(
            f"Cannot tell the {'version' if version is None else 'sample rate'} of {where}: no config.json or "
            "train.log beside it and its weights do not say. Pass the experiment's version and sample rate "
            "(CLI: --version v2 --sample-rate 40k)."
        )
    rate = sample_rate_from_tag(rate)
    use_f0 = "enc_p.emb_pitch.weight" in ckpt.model
    config = preset(version, rate, use_f0) if rvc_table_config else config_from_weights(ckpt.model, version, rate)
    metadata: dict[str, Any] = {}
    if experiment is not None:
        metadata = {
            "epochs": int(ckpt.iteration),
            "sample_rate": rate,
            "version": version,
            "f0_method": experiment.f0_method,
            "content_encoder": experiment.content_encoder,
            "f0_stats": pitch_range(experiment.folder / "2b-f0nsf") if use_f0 else None,
            "extracted_from": path.name if path else None,
        }
        metadata = {k: v for k, v in metadata.items() if v is not None}
    small = make_small_model(ckpt.model, config, version, info or "Extracted model.", metadata)
    if experiment is not None and experiment.use_f0 is not None and experiment.use_f0 != use_f0:
        small.warnings.append(
            f"The experiment's {experiment.source} says pitch guidance is {'on' if experiment.use_f0 else 'off'}, "
            f"but the weights are those of a model {'with' if use_f0 else 'without'} it; the weights were followed."
        )
    return small


def extract_voice(
    checkpoint: str | Path,
    output: str | Path | None = None,
    *,
    name: str | None = None,
    weights_dir: str | Path | None = None,
    version: str | None = None,
    sample_rate: int | str | None = None,
    info: str = "",
    rvc_table_config: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> SavedVoice:
    """Extract a small model from ``checkpoint`` (a G_*.pth) and write it atomically.

    ``output``: a name (``alice`` → ``<weights_dir>/alice.pth``) or a path;
    ``name`` instead is only ever a file name in ``weights_dir``; default ``<experiment>_e<epoch>`` when the experiment folder is found
    (the name the trainer gives its own exports, so the experiment's index
    pairs with it), else the checkpoint's stem.  ``weights_dir`` defaults to
    ``$RVC_WEIGHTS_DIR`` or ``weights/``.  Other arguments as in
    :func:`extract_small_model`.
    """
    checkpoint = Path(checkpoint)
    report(progress, 0.0, f"reading {checkpoint.name}")
    ckpt = read_checkpoint(checkpoint)
    if ckpt.kind != "generator":
        raise ModelFileError(
            f"'{checkpoint}' is not a generator checkpoint: extraction needs a G_*.pth, not a D_*.pth."
        )
    experiment = find_experiment_settings(checkpoint)
    default = (
        f"{safe_voice_name(experiment.name, 'experiment name')}_e{ckpt.iteration}" if experiment else checkpoint.stem
    )
    path = output_for(output, name, default, weights_dir)
    check_writable(path, overwrite)
    report(progress, 0.5, "extracting the voice")
    small = extract_small_model(
        ckpt,
        version=version,
        sample_rate=sample_rate,
        info=info,
        rvc_table_config=rvc_table_config,
        source_path=checkpoint,
    )
    report(progress, 0.8, f"writing {path.name}")
    write_small_model(small, path)
    report(progress, 1.0, "done")
    return SavedVoice(path, small, list(small.warnings))
