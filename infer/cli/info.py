"""``python -m infer info PATH``: what a file is and what it holds.

Voice models (.pth): version, sample rate, pitch guidance, speakers, feature
size, info text and metadata.  Feature indexes (.index): dimension, vectors,
nprobe, experiment.  G_/D_ training checkpoints: kind and epoch.  Audio files:
duration, sample rate, channels, codec.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infer.cli.common import Console, fatal

TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``info`` on ``subparsers``."""
    parser = subparsers.add_parser(
        "info", help="describe a voice, index, checkpoint or audio file", description=__doc__
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="the file to describe")
    parser.add_argument("--json", action="store_true", help="print the description as JSON")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.set_defaults(handler=run)
    return parser


def model_file_info(path: Path) -> dict[str, Any]:
    """Describe a torch file: a voice, a G_/D_ checkpoint, a content encoder, RMVPE, or unknown."""
    from infer.checkpoints import file_kind, small_model_from_dict
    from infer.safe_load import load_torch_file

    obj = load_torch_file(path)
    kind = file_kind(obj)
    if kind == "small_model":
        model = small_model_from_dict(obj, path)
        return {
            "kind": "voice model",
            "version": model.version,
            "sample_rate": model.sample_rate,
            "pitch_guidance": model.use_f0,
            "speakers": model.n_speakers,
            "feature_dim": model.config.feature_dim,
            "info": model.info,
            "metadata": dict(model.metadata),
            "warnings": list(model.warnings),
        }
    if kind in ("generator", "discriminator"):
        state = obj["model"]
        return {
            "kind": f"{kind} training checkpoint ({'G' if kind == 'generator' else 'D'}_*.pth)",
            "epoch": obj.get("iteration"),
            "learning_rate": obj.get("learning_rate"),
            "optimizer_state": obj.get("optimizer") is not None,
            "parameters": sum(int(v.numel()) for v in state.values() if hasattr(v, "numel")),
            "hint": "extract a small voice model from a G_ file before converting with it"
            if kind == "generator"
            else "used only for training",
        }
    state = obj.get("model") if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping) else obj
    keys = [str(k) for k in state] if isinstance(state, Mapping) else []
    if any(k.startswith("encoder.layers.") for k in keys):
        return {"kind": "content encoder (HuBERT/ContentVec)", "tensors": len(keys)}
    if any(k.startswith("unet.") for k in keys):
        return {"kind": "RMVPE pitch model", "tensors": len(keys)}
    shown = [str(k) for k in obj][:8] if isinstance(obj, Mapping) else [type(obj).__name__]
    return {"kind": "PyTorch file of an unknown kind", "top_level": shown}


def index_file_info(path: Path) -> dict[str, Any]:
    """Describe a FAISS feature index."""
    from infer.index_pairing import index_experiment_name
    from infer.retrieval import FeatureIndex

    index = FeatureIndex.load(path)
    version = {256: "v1", 768: "v2"}.get(index.dim)
    data = {
        "kind": "feature index",
        "dim": index.dim,
        "vectors": index.ntotal,
        "nprobe": index.nprobe,
        "experiment": index_experiment_name(index.path),
        "for_voice_version": version,
    }
    if index.note:
        data["note"] = index.note
    return data


def audio_file_info(path: Path) -> dict[str, Any]:
    """Describe an audio (or video) file from its header."""
    from infer.audio import audio_info

    info = audio_info(path)
    return {
        "kind": "audio",
        "duration": round(info.duration, 3) if info.duration is not None else None,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "codec": info.codec,
        "container": info.container,
    }


def describe(path: Path) -> dict[str, Any]:
    """Whatever ``path`` is: tried as the kind its suffix suggests first, then as the others."""
    if not path.exists():
        fatal(f"'{path}' does not exist. Check the path.")
    if path.is_dir():
        fatal(f"'{path}' is a folder; pass a file.")
    suffix = path.suffix.lower()
    readers = [audio_file_info, model_file_info, index_file_info]
    if suffix in TORCH_SUFFIXES:
        readers = [model_file_info, index_file_info, audio_file_info]
    elif suffix == ".index":
        readers = [index_file_info, model_file_info, audio_file_info]
    problems = []
    for reader in readers:
        try:
            data = reader(path)
        except ValueError as exc:  # ModelFileError, FeatureIndexError, AudioFileError
            problems.append(str(exc))
            continue
        return {"path": str(path), "size_bytes": path.stat().st_size, **data}
    fatal(f"'{path}' is not a voice model, checkpoint, feature index or audio file. {problems[0]}")


def run(args: argparse.Namespace, console: Console) -> int:
    """Print the description of ``args.path`` (or JSON). Returns the exit code."""
    data = describe(args.path)
    if args.json:
        console.json(data)
        return 0
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = "; ".join(map(str, value)) or "-"
        console.result(f"{key.replace('_', ' ')}: {value}")
    return 0
