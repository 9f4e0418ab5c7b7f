"""Show and change what a voice file says about itself (RVC's "view / modify model info", spec §9.5).

RVC showed info, rate, pitch and version; we add speakers, training epochs,
size, content width and our metadata, and read G_ checkpoints too.  Changing
the info rewrites only the ``info`` entry, in place by default (RVC always
saved into ``assets/weights/``, §11.10).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infer.atomic import atomic_torch_save
from infer.checkpoints import file_kind, small_model_from_dict
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
from infer.safe_load import ModelFileError, load_torch_file

_EPOCH_INFO = re.compile(r"^\s*(\d+)\s*epoch\s*$")  # the trainer writes info = "<epoch>epoch"


@dataclass
class VoiceInfo:
    """What a voice model or G_ checkpoint holds.  ``text()`` for people, ``to_json()`` for programs."""

    path: Path
    kind: str  # "voice" or "generator checkpoint"
    sample_rate: int
    version: str
    use_f0: bool
    speakers: int
    feature_dim: int
    info: str
    epochs: int | None
    size_bytes: int
    parameters: int
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def text(self) -> str:
        """Readable lines: info, rate, pitch, version, speakers, epochs, size, then metadata and warnings."""
        lines = [
            f"File: {self.path.name} ({self.kind})",
            f"Info: {self.info or '-'}",
            f"Sample rate: {tag_from_sample_rate(self.sample_rate)} ({self.sample_rate} Hz)",
            f"Pitch guidance: {'yes' if self.use_f0 else 'no'}",
            f"Version: {self.version} ({self.feature_dim}-dim content features)",
            f"Speakers: {self.speakers}",
            f"Training epochs: {self.epochs if self.epochs is not None else 'unknown'}",
            f"Size: {self.size_bytes / 1e6:.1f} MB ({self.parameters / 1e6:.2f} M parameters)",
        ]
        stats = self.metadata.get("f0_stats")
        if isinstance(stats, dict) and stats.get("median"):
            lines.append(
                f"Training pitch: median {stats['median']:.0f} Hz"
                + (f" (5–95 %: {stats['p5']:.0f}–{stats['p95']:.0f} Hz)" if stats.get("p5") else "")
            )
        for key, value in self.metadata.items():
            if key not in ("f0_stats", "format_version", "sample_rate", "version", "epochs"):
                lines.append(f"{key.replace('_', ' ').capitalize()}: {value}")
        lines.extend(f"Warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        data = asdict(self)
        data["path"] = str(self.path)
        data["sample_rate_tag"] = tag_from_sample_rate(self.sample_rate)
        return data


def training_epochs(metadata: dict[str, Any], info: str, iteration: Any) -> int | None:
    """Epochs trained: our metadata, else the trainer's info text ``"<n>epoch"``, else a G_'s ``iteration``."""
    if isinstance(metadata.get("epochs"), int):
        return int(metadata["epochs"])
    match = _EPOCH_INFO.match(info or "")
    if match:
        return int(match.group(1))
    return int(iteration) if iteration is not None else None


def voice_info(path: str | Path) -> VoiceInfo:
    """Describe a voice model (``weights/*.pth``) or a ``G_*.pth`` checkpoint.

    For a checkpoint the rate and version come from its experiment folder or
    its weights.  Raises ``ModelFileError`` (a ``ValueError``) for other files.
    """
    path = Path(path)
    obj, kind = read_voice_weights(path)
    model = as_small_model(obj, kind, path)
    if kind == "generator":
        parameters = sum(int(v.numel()) for v in obj["model"].values() if hasattr(v, "numel"))
        epochs = training_epochs({}, "", obj.get("iteration"))
        label, info = "generator checkpoint", ""
    else:
        parameters = sum(int(v.numel()) for v in model.weight.values())
        epochs = training_epochs(model.metadata, model.info, None)
        label, info = "voice", model.info
    metadata = {k: v for k, v in model.metadata.items() if k != "format_version"}
    return VoiceInfo(
        path=path,
        kind=label,
        sample_rate=model.sample_rate,
        version=model.version,
        use_f0=model.use_f0,
        speakers=model.n_speakers,
        feature_dim=model.config.feature_dim,
        info=info,
        epochs=epochs,
        size_bytes=path.stat().st_size,
        parameters=parameters,
        metadata=metadata,
        warnings=list(model.warnings),
    )


def set_voice_info(
    path: str | Path,
    info: str,
    output: str | Path | None = None,
    *,
    name: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> SavedVoice:
    """Set the ``info`` text of a voice model; everything else in the file is kept as it was.

    Without ``output`` the file is rewritten in place (atomically).  A bare
    name in ``output`` (or ``name``, which is only ever a file name) lands in
    the *same folder* as ``path``; an existing
    other file is refused unless ``overwrite``.
    """
    path = Path(path)
    report(progress, 0.0, f"reading {path.name}")
    obj = load_torch_file(path)
    if file_kind(obj) != "small_model":
        raise ModelFileError(
            f"'{path}' is not a voice model, so it has no info text to change. Extract a voice from a G_*.pth first."
        )
    if not isinstance(info, str):
        raise CkptError(f"The new info for '{path}' must be text.")
    in_place = output is None and name is None
    target = path if in_place else output_for(output, name, path.stem, path.parent)
    if target.resolve() != path.resolve():
        check_writable(target, overwrite)
    obj["info"] = info
    model = small_model_from_dict(obj, target)
    report(progress, 0.5, f"writing {target.name}")
    atomic_torch_save(obj, target)
    report(progress, 1.0, "done")
    return SavedVoice(target, model, list(model.warnings))
