"""What the ckpt and Export tabs do: widget values → :mod:`infer.ckpt` call → texts (no Gradio here).

Each action returns the message shown under its button, worded by
``say(key, **values)`` (the tab passes one in the viewer's language), and
raises the library's ``ValueError`` (or ``OSError``) unchanged; the tab turns
those into ``gr.Error``.  File choices are names of voices in the weights folder or
paths typed by the user (G_ checkpoints live in ``logs/<experiment>/``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from config import Settings
from infer import ckpt
from infer.models.config import tag_from_sample_rate
from webui.train_requests import clean_path

CHECKPOINT_GLOB = "G_*.pth"
Say = Callable[..., str]


def english(key: str, **values: object) -> str:
    """A stand-in ``say`` without translations (tests, scripts): the key and its values."""
    return " ".join([key, *(f"{k}={v}" for k, v in values.items())])


def resolve_model(settings: Settings, choice: str | None, what: str = "model file") -> Path:
    """A dropdown value as a path: a bare voice name (``alice.pth``) is looked up in the weights folder.

    Raises ``ValueError`` when nothing is chosen and ``FileNotFoundError`` naming the path when it is missing.
    """
    text = clean_path(choice)
    if not text:
        raise ValueError(f"Choose a {what} first.")
    path = Path(text)
    bare_name = not path.is_absolute() and path.parent == Path(".")
    if bare_name and (settings.weights_dir / path).is_file():
        return settings.weights_dir / path
    if not path.is_file():
        where = f"'{settings.weights_dir / path}' or '{path.resolve()}'" if bare_name else f"'{path}'"
        raise FileNotFoundError(
            f"{where} does not exist; choose a {what} from the list (Refresh lists) or give its full path."
        )
    return path


def list_checkpoints(settings: Settings) -> list[tuple[str, str]]:
    """``(label, path)`` for every ``G_*.pth`` in the experiment folders, newest first."""
    logs = settings.logs_dir
    if not logs.is_dir():
        return []
    found = sorted(logs.glob(f"*/{CHECKPOINT_GLOB}"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [(f"{p.parent.name}/{p.name}", str(p)) for p in found]


def _with_warnings(lines: list[str], warnings: list[str]) -> str:
    return "\n".join([*lines, *(f"⚠ {w}" for w in warnings)])


def _saved(say: Say, saved: ckpt.SavedVoice) -> str:
    model = saved.model
    text = say(
        "ckpt.saved",
        path=str(saved.path),
        sr=tag_from_sample_rate(model.sample_rate),
        version=model.version,
        pitch=say("ckpt.pitch_yes" if model.use_f0 else "ckpt.pitch_no"),
        speakers=model.n_speakers,
        info=model.info,
    )
    return _with_warnings([text], saved.warnings)


def merge(settings: Settings, say: Say, a: str, b: str, weight_a: float, info: str, name: str, overwrite: bool) -> str:
    """Merge voices ``a`` and ``b`` (``weight_a``·A + (1 − ``weight_a``)·B) into ``<weights>/<name>.pth``."""
    saved = ckpt.merge_voices(
        resolve_model(settings, a, "voice A"),
        resolve_model(settings, b, "voice B"),
        float(weight_a),
        name.strip() or None,
        info=info.strip(),
        weights_dir=settings.weights_dir,
        overwrite=bool(overwrite),
    )
    return _saved(say, saved)


def show_info(settings: Settings, choice: str) -> str:
    """The readable description of a voice or G_ checkpoint."""
    return ckpt.voice_info(resolve_model(settings, choice, "voice or G_*.pth checkpoint")).text()


def modify_info(settings: Settings, say: Say, choice: str, info: str, name: str, overwrite: bool) -> str:
    """Set a voice's info text, in place or into a new file ``name`` beside it."""
    saved = ckpt.set_voice_info(
        resolve_model(settings, choice, "voice"), info, name.strip() or None, overwrite=bool(overwrite)
    )
    return _saved(say, saved)


@dataclass(frozen=True)
class CheckpointSettings:
    """What the extract form is filled with for a checkpoint: rate tag, version, pitch (None: unknown)."""

    sample_rate: str | None
    version: str | None
    use_f0: bool | None
    source: str | None


def checkpoint_settings(choice: str | None) -> CheckpointSettings:
    """Rate, version and pitch setting of a G_ checkpoint's experiment (config.json or train.log beside it)."""
    text = clean_path(choice)
    found = ckpt.find_experiment_settings(Path(text)) if text else None
    if found is None:
        return CheckpointSettings(None, None, None, None)
    tag = tag_from_sample_rate(found.sample_rate) if found.sample_rate else None
    return CheckpointSettings(tag, found.version, found.use_f0, found.source)


def extract(
    settings: Settings, say: Say, choice: str, name: str, sample_rate: str, version: str, info: str, overwrite: bool
) -> str:
    """Extract a small model from a G_ checkpoint into the weights folder."""
    saved = ckpt.extract_voice(
        resolve_model(settings, choice, "G_*.pth checkpoint"),
        name.strip() or None,
        weights_dir=settings.weights_dir,
        version=version or None,
        sample_rate=sample_rate or None,
        info=info.strip(),
        overwrite=bool(overwrite),
    )
    return _saved(say, saved)


def export_onnx(settings: Settings, say: Say, choice: str, output: str, overwrite: bool) -> tuple[str, Path]:
    """Export a voice to ONNX (default ``<voice>.onnx`` beside it); returns the description and the file."""
    result = ckpt.export_onnx(
        resolve_model(settings, choice, "voice"), clean_path(output) or None, overwrite=bool(overwrite)
    )
    return result.text(), result.path


def make_bundle(settings: Settings, say: Say, choice: str, index: str, overwrite: bool) -> tuple[str, Path]:
    """Zip a voice with its index (``"auto"``: the paired one; ``""``: none) and ``voice.json``."""
    index_choice = clean_path(index)
    result = ckpt.make_bundle(
        resolve_model(settings, choice, "voice"),
        index=None if index_choice == "" else index_choice,
        search_dirs=[d for d in (settings.logs_dir, settings.assets_dir / "indices") if d.is_dir()],
        logs_dir=settings.logs_dir,
        weights_dir=settings.weights_dir,
        overwrite=bool(overwrite),
    )
    files = ", ".join(result.manifest.get("files", {}) or [])
    return _with_warnings(
        [say("export.bundle_saved", path=str(result.path), files=files)], result.warnings
    ), result.path


def import_bundle(settings: Settings, say: Say, upload: str | None, url: str, name: str, overwrite: bool) -> str:
    """Import a voice from an uploaded zip or a URL into the weights folder (index into ``assets/indices``)."""
    source = clean_path(upload) or clean_path(url)
    if not source:
        raise ValueError("Upload a voice zip or paste its URL first.")
    voice = ckpt.import_bundle(
        source,
        name=name.strip() or None,
        weights_dir=settings.weights_dir,
        indices_dir=settings.assets_dir / "indices",
        overwrite=bool(overwrite),
    )
    lines = [say("export.imported", name=voice.name, path=str(voice.voice_path))]
    if voice.index_path is not None:
        lines.append(say("export.imported_index", path=str(voice.index_path)))
    return _with_warnings(lines, voice.warnings)
