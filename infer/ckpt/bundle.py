"""Voice bundles: one ``.zip`` with the small model, its index and a ``voice.json`` describing them.

Layout (``<name>`` is the voice's name)::

    <name>/voice.json      what the voice is and how to use it (:func:`bundle_manifest`)
    <name>/<name>.pth      the small model, byte for byte
    <name>/<name>.index    its feature index (optional)

``voice.json`` holds: name, sample rate, version, pitch guidance, content
encoder, training f0 method, the voice's pitch range (Hz), suggested key /
index rate / protect, epochs, info, and size + SHA-256 of each file.
:func:`~infer.ckpt.bundle_import.import_bundle` reads these and also the zips
other apps make.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infer.atomic import atomic_path, atomic_write_text
from infer.checkpoints import SmallModel, read_small_model
from infer.ckpt.common import (
    CkptError,
    Progress,
    check_writable,
    default_indices_dir,
    report,
    resolve_output,
    safe_voice_name,
)
from infer.ckpt.extract import pitch_range
from infer.ckpt.info import training_epochs

BUNDLE_FORMAT = "rvc-studio-voice"
BUNDLE_FORMAT_VERSION = 1
MANIFEST_NAME = "voice.json"
SIDECAR_SUFFIX = ".voice.json"  # the manifest kept beside an imported voice: weights/<name>.voice.json
DEFAULT_CONTENT_ENCODER = "hubert_base"  # what RVC trains every v1/v2 voice on
_TRAINER_SUFFIX = re.compile(r"_e\d+(?:_s\d+)?$")


@dataclass
class BundleResult:
    """A written bundle: its path, the ``voice.json`` it holds, and notes."""

    path: Path
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "manifest": self.manifest, "warnings": list(self.warnings)}


def suggested_settings(
    key: float = 0.0, index_rate: float | None = None, protect: float | None = None, *, has_index: bool = True
) -> dict[str, float]:
    """Checked suggestions for the conversion controls; index rate and protect default to the UI's defaults."""
    from infer.params import ConvertParams

    defaults = ConvertParams()
    index_rate = (defaults.index_rate if has_index else 0.0) if index_rate is None else float(index_rate)
    protect = defaults.protect if protect is None else float(protect)
    if not -48 <= float(key) <= 48 or not 0 <= index_rate <= 1 or not 0 <= protect <= 0.5:
        raise CkptError(
            f"Suggested settings out of range (key {key}, index rate {index_rate}, protect {protect}): "
            "key must be within ±48 semitones, index rate 0..1, protect 0..0.5."
        )
    return {"key": float(key), "index_rate": index_rate, "protect": protect}


def file_digest(path: Path) -> dict[str, Any]:
    """``{"size": bytes, "sha256": hex}`` of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def bundle_manifest(
    model: SmallModel,
    name: str,
    *,
    model_file: str,
    index_file: str | None,
    suggested: dict[str, float],
    pitch: dict[str, float] | None = None,
    files: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``voice.json`` dict for ``model`` (see the module docstring)."""
    metadata = model.metadata
    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "name": name,
        "model": model_file,
        "index": index_file,
        "sample_rate": model.sample_rate,
        "version": model.version,
        "pitch_guidance": model.use_f0,
        "feature_dim": model.config.feature_dim,
        "speakers": model.n_speakers,
        "content_encoder": metadata.get("content_encoder") or DEFAULT_CONTENT_ENCODER,
        "f0_method": metadata.get("f0_method"),
        "pitch_range_hz": pitch if pitch is not None else metadata.get("f0_stats"),
        "suggested": dict(suggested),
        "epochs": training_epochs(metadata, model.info, None),
        "info": model.info,
        "files": dict(files or {}),
        "created_by": "RVC Studio",
    }


def _pick_index(voice: Path, index: str | Path | None, search_dirs: list[Path] | None) -> Path | None:
    if index is None or str(index).strip().lower() in ("", "none"):
        return None
    if str(index).strip().lower() != "auto":
        path = Path(index)
        if not path.is_file():
            raise CkptError(f"Index file '{path}' does not exist. Pick an existing .index file, or bundle without one.")
        return path
    from infer.index_pairing import find_index_for_voice

    if search_dirs is None:
        from config import Settings

        settings = Settings.from_env()
        search_dirs = [settings.logs_dir, default_indices_dir()]
    return find_index_for_voice(voice, [d for d in [*search_dirs, voice.parent] if Path(d).is_dir()])


def make_bundle(
    voice: str | Path,
    output: str | Path | None = None,
    *,
    index: str | Path | None = "auto",
    search_dirs: list[Path] | None = None,
    logs_dir: str | Path | None = None,
    name: str | None = None,
    key: float = 0.0,
    index_rate: float | None = None,
    protect: float | None = None,
    weights_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> BundleResult:
    """Write ``<name>.zip`` holding the voice, its index and ``voice.json``.

    ``index``: ``"auto"`` (the index paired with the voice by name, searched in
    ``search_dirs`` — default logs/ and assets/indices — and beside the voice),
    a path, or None.  An index whose dimension does not fit the voice is
    refused.  The pitch range comes from the voice's metadata, else from
    ``<logs_dir>/<experiment>/2b-f0nsf``.  ``output``: a name (into
    ``weights_dir``) or a path, default ``<name>.zip`` beside the voice.
    """
    from infer.retrieval import FeatureIndex

    voice = Path(voice)
    report(progress, 0.0, f"reading {voice.name}")
    model = read_small_model(voice)
    name = safe_voice_name(name or voice.stem)
    if output is None and weights_dir is None:
        path = voice.with_name(f"{name}.zip")
    else:
        path = resolve_output(output, name, weights_dir, suffix=".zip")
    check_writable(path, overwrite)
    index_path = _pick_index(voice, index, search_dirs)
    warnings = list(model.warnings)
    if index_path is not None:
        dim = FeatureIndex.load(index_path).dim
        if dim != model.config.feature_dim:
            raise CkptError(
                f"Index '{index_path}' holds {dim}-dim features but voice '{voice}' uses {model.config.feature_dim}-dim "
                "ones: they do not belong together. Pick the index trained with this voice, or bundle without one."
            )
    elif index is not None and str(index).strip().lower() == "auto":
        warnings.append(f"No index was found for '{voice.stem}'; the bundle holds the model only.")
    pitch = model.metadata.get("f0_stats")
    if pitch is None and logs_dir is not None and model.use_f0:
        pitch = pitch_range(Path(logs_dir) / _TRAINER_SUFFIX.sub("", voice.stem) / "2b-f0nsf")
    suggested = suggested_settings(key, index_rate, protect, has_index=index_path is not None)
    report(progress, 0.2, "checksumming")
    files = {f"{name}.pth": file_digest(voice)}
    if index_path is not None:
        files[f"{name}.index"] = file_digest(index_path)
    manifest = bundle_manifest(
        model,
        name,
        model_file=f"{name}.pth",
        index_file=f"{name}.index" if index_path else None,
        suggested=suggested,
        pitch=pitch,
        files=files,
    )
    report(progress, 0.5, f"writing {path.name}")
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
        zf.writestr(
            f"{name}/{MANIFEST_NAME}",
            json.dumps(manifest, indent=2, ensure_ascii=False),
            compress_type=zipfile.ZIP_DEFLATED,
        )
        zf.write(voice, f"{name}/{name}.pth", compress_type=zipfile.ZIP_STORED)  # fp16 weights do not compress
        if index_path is not None:
            zf.write(index_path, f"{name}/{name}.index", compress_type=zipfile.ZIP_STORED)
    report(progress, 1.0, "done")
    return BundleResult(path, manifest, warnings)


def sidecar_path(voice_path: str | Path) -> Path:
    """Where an imported voice keeps its ``voice.json``: ``weights/<name>.voice.json``."""
    voice_path = Path(voice_path)
    return voice_path.with_name(voice_path.stem + SIDECAR_SUFFIX)


def read_voice_manifest(voice_path: str | Path) -> dict[str, Any] | None:
    """The ``voice.json`` kept beside an imported voice (suggested settings, pitch range, ...), or None."""
    try:
        data = json.loads(sidecar_path(voice_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_voice_manifest(voice_path: Path, manifest: dict[str, Any]) -> Path:
    """Write the sidecar ``voice.json`` of ``voice_path`` atomically."""
    return atomic_write_text(json.dumps(manifest, indent=2, ensure_ascii=False), sidecar_path(voice_path))
