"""What the checkpoint tools share: errors, output paths, progress, and reading any voice-like file.

Every operation here takes paths, returns a typed result and raises a
:class:`CkptError` (a ``ValueError``) whose message names the file and says
what to do, so the CLI and the web UI can show it as is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infer.checkpoints import SmallModel, file_kind, small_model_from_dict
from infer.safe_load import ModelFileError, load_torch_file

Progress = Callable[[float, str], None]
"""``progress(fraction 0..1, message)``: called by long operations."""

_UNSAFE_NAME = re.compile(r"[\\/:*?\"<>|\x00-\x1f]")


class CkptError(ValueError):
    """A checkpoint tool cannot do what was asked; the message names the file and says what to do."""


class OutputExistsError(CkptError):
    """The output file exists and overwriting was not allowed."""

    def __init__(self, path: Path, hint: str = "pass overwrite=True (CLI: --force) or choose another name") -> None:
        self.path = Path(path)
        super().__init__(f"'{self.path}' already exists; nothing was written. To replace it, {hint}.")


@dataclass
class SavedVoice:
    """A voice model written by a checkpoint tool: where it went, what it holds, what to know."""

    path: Path
    model: SmallModel
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """JSON-ready summary (path, rate, version, pitch, speakers, info, warnings)."""
        return {
            "path": str(self.path),
            "sample_rate": self.model.sample_rate,
            "version": self.model.version,
            "pitch_guidance": self.model.use_f0,
            "speakers": self.model.n_speakers,
            "info": self.model.info,
            "warnings": list(self.warnings),
        }


def report(progress: Progress | None, fraction: float, message: str) -> None:
    """Call ``progress`` when one was given."""
    if progress is not None:
        progress(fraction, message)


def default_weights_dir() -> Path:
    """``$RVC_WEIGHTS_DIR`` or the project's ``weights/`` folder (where the UI lists voices)."""
    from config import Settings

    return Settings.from_env().weights_dir


def default_indices_dir() -> Path:
    """``<assets>/indices`` (RVC's outside index folder, searched by the UI), honouring ``$RVC_ASSETS_DIR``."""
    from config import Settings

    return Settings.from_env().assets_dir / "indices"


def safe_voice_name(name: str, what: str = "voice name") -> str:
    """``name`` checked as a file stem: no folders, no control or reserved characters, not hidden."""
    cleaned = name.strip()
    if cleaned.lower().endswith(".pth"):
        cleaned = cleaned[:-4]
    if not cleaned or cleaned in (".", "..") or cleaned.startswith(".") or _UNSAFE_NAME.search(cleaned):
        raise CkptError(
            f"{what} {name!r} cannot be used as a file name: use letters, digits, spaces, '-', '_' or '.', "
            "without folders and not starting with a dot."
        )
    return cleaned


def resolve_output(
    output: str | Path | None, default_name: str, weights_dir: str | Path | None, suffix: str = ".pth"
) -> Path:
    """Where to write: a path as given (a bare name goes into ``weights_dir``), else ``weights_dir/<default_name>``.

    ``"alice"`` and ``"alice.pth"`` mean ``<weights_dir>/alice.pth``; anything
    with a folder part (``out/alice.pth``) is used as is, with ``suffix`` added
    when it has none.
    """
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    if output is None or str(output).strip() == "":
        return folder / f"{safe_voice_name(default_name)}{suffix}"
    given = Path(output)
    if given.parent == Path(".") and not str(output).startswith("."):
        stem = safe_voice_name(given.name[: -len(suffix)] if given.name.lower().endswith(suffix) else given.name)
        return folder / f"{stem}{suffix}"
    return given if given.suffix.lower() == suffix else given.with_name(given.name + suffix)


def named_output(name: str, folder: str | Path | None, suffix: str = ".pth", what: str = "save name") -> Path:
    """``<folder>/<name><suffix>`` for a save *name*: a name with a folder part, ``..`` or a leading dot is refused.

    The library's callers that take names from users (the web UI) pass them
    here, so a name can never write outside ``folder`` (default: the weights folder).
    """
    base = Path(folder) if folder is not None else default_weights_dir()
    text = name.strip()
    stem = safe_voice_name(text[: -len(suffix)] if text.lower().endswith(suffix) else text, what)
    path = base / f"{stem}{suffix}"
    if path.parent != base:
        raise CkptError(f"{what} {name!r} would leave '{base}'; give a plain file name.")
    return path


def output_for(
    output: str | Path | None, name: str | None, default_name: str, folder: str | Path | None, suffix: str = ".pth"
) -> Path:
    """The output file from either a save ``name`` (:func:`named_output`) or an ``output`` (:func:`resolve_output`)."""
    if name is not None and output is not None:
        raise CkptError(f"Give either a name ({name!r}) or an output path ({str(output)!r}), not both.")
    if name is not None:
        return named_output(name, folder, suffix)
    return resolve_output(output, default_name, folder, suffix)


def check_writable(path: Path, overwrite: bool) -> None:
    """Refuse an existing ``path`` unless ``overwrite``; refuse a folder in any case."""
    if path.is_dir():
        raise CkptError(f"'{path}' is a folder; give a file name for the output.")
    if path.exists() and not overwrite:
        raise OutputExistsError(path)


def read_voice_weights(path: str | Path) -> tuple[dict, str]:
    """Load a small model or a G_ checkpoint safely: ``(loaded dict, kind)``, kind ``small_model``/``generator``.

    Discriminators and other files raise :class:`~infer.safe_load.ModelFileError`.
    """
    path = Path(path)
    obj = load_torch_file(path)
    kind = file_kind(obj)
    if kind == "discriminator":
        raise ModelFileError(
            f"'{path}' is a discriminator checkpoint (D_*.pth), which holds no voice. Use the voice model "
            "(weights/*.pth) or the generator checkpoint (G_*.pth) of the same training."
        )
    if kind not in ("small_model", "generator"):
        raise ModelFileError(
            f"'{path}' is neither an RVC voice model nor a G_*.pth training checkpoint (no 'weight'/'config' "
            "or generator 'model' entries)."
        )
    return obj, kind


def as_small_model(
    obj: dict, kind: str, path: Path, *, version: str | None = None, sample_rate: int | str | None = None
) -> SmallModel:
    """A :class:`SmallModel` from a loaded small model or G_ checkpoint (settings found as :func:`extract_small_model` does)."""
    if kind == "small_model":
        return small_model_from_dict(obj, path)
    from infer.ckpt.extract import extract_small_model

    return extract_small_model(obj, version=version, sample_rate=sample_rate, source_path=path)
