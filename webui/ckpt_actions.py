"""What the ckpt and Export tabs do: widget values → :mod:`infer.ckpt` call → texts (no Gradio here).

Each action returns the message shown under its button, worded by
``say(key, **values)`` (the tab passes one in the viewer's language), and
raises the library's ``ValueError`` (or ``OSError``) unchanged; the tab turns
those into ``gr.Error``.  File choices are names of voices in the weights folder or
paths typed by the user (G_ checkpoints live in ``logs/<experiment>/``), which
must lie in a folder the server reads (:class:`webui.paths.PathPolicy`).
Everything written goes into the studio's folders: save names are plain file
names (into ``weights/``), in-place edits only touch files in a writable
folder, and a URL import fetches public http(s) addresses only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from config import Settings
from infer import ckpt
from infer.models.config import tag_from_sample_rate
from infer.url_policy import check_url
from webui.paths import PathPolicy, file_name
from webui.train_requests import clean_path

CHECKPOINT_GLOB = "G_*.pth"
Say = Callable[..., str]


def english(key: str, **values: object) -> str:
    """A stand-in ``say`` without translations (tests, scripts): the key and its values."""
    return " ".join([key, *(f"{k}={v}" for k, v in values.items())])


def resolve_model(settings: Settings, choice: str | None, what: str = "model file") -> Path:
    """A dropdown value as a path: a bare voice name (``alice.pth``) is looked up in the weights folder,
    anything else must be a path inside a folder this server reads.

    Raises ``ValueError`` when nothing is chosen, :class:`~webui.paths.OutsideStudioError` for a path
    outside those folders and ``FileNotFoundError`` naming the path when it is missing.
    """
    text = clean_path(choice)
    if not text:
        raise ValueError(f"Choose a {what} first.")
    bare = Path(text)
    if not bare.is_absolute() and bare.parent == Path(".") and bare.name not in (".", ".."):
        path = settings.weights_dir / bare
    else:
        path = PathPolicy(settings).readable(text, what[:1].upper() + what[1:])
    if not path.is_file():
        raise FileNotFoundError(
            f"'{path}' does not exist; choose a {what} from the list (Refresh lists) or give its full path."
        )
    return path


def _save_name(text: str | None, what: str, suffix: str = ".pth") -> str | None:
    """A typed save name checked as a plain file name, or None when the box is empty (the default name)."""
    return file_name(text, what, suffix=suffix) if clean_path(text) else None


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
        name=_save_name(name, "Save name"),
        info=info.strip(),
        weights_dir=settings.weights_dir,
        overwrite=bool(overwrite),
    )
    return _saved(say, saved)


def show_info(settings: Settings, choice: str) -> str:
    """The readable description of a voice or G_ checkpoint."""
    return ckpt.voice_info(resolve_model(settings, choice, "voice or G_*.pth checkpoint")).text()


def modify_info(settings: Settings, say: Say, choice: str, info: str, name: str, overwrite: bool) -> str:
    """Set a voice's info text, in place or into a new file ``name`` beside it (both in a writable folder)."""
    voice = resolve_model(settings, choice, "voice")
    new_name = _save_name(name, "Save name")
    target = voice if new_name is None else voice.parent / f"{new_name}.pth"
    PathPolicy(settings).writable_file(target, "Change info")
    saved = ckpt.set_voice_info(voice, info, name=new_name, overwrite=bool(overwrite))
    return _saved(say, saved)


@dataclass(frozen=True)
class CheckpointSettings:
    """What the extract form is filled with for a checkpoint: rate tag, version, pitch (None: unknown)."""

    sample_rate: str | None
    version: str | None
    use_f0: bool | None
    source: str | None


def checkpoint_settings(choice: str | None, settings: Settings | None = None) -> CheckpointSettings:
    """Rate, version and pitch setting of a G_ checkpoint's experiment (config.json or train.log beside it).

    With ``settings``, a path outside the folders the server reads counts as unknown.
    """
    text = clean_path(choice)
    if text and settings is not None:
        try:
            PathPolicy(settings).readable(text, "Checkpoint")
        except (ValueError, OSError):
            text = ""
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
        name=_save_name(name, "Save name"),
        weights_dir=settings.weights_dir,
        version=version or None,
        sample_rate=sample_rate or None,
        info=info.strip(),
        overwrite=bool(overwrite),
    )
    return _saved(say, saved)


def export_onnx(settings: Settings, say: Say, choice: str, output: str, overwrite: bool) -> tuple[str, Path]:
    """Export a voice to ``<weights>/<output>.onnx`` (default ``<voice>.onnx``); returns the description and file.

    ``output`` is a file name, never a path.
    """
    result = ckpt.export_onnx(
        resolve_model(settings, choice, "voice"),
        name=_save_name(output, "ONNX file name", ".onnx"),
        weights_dir=settings.weights_dir,
        overwrite=bool(overwrite),
    )
    return result.text(), result.path


def make_bundle(settings: Settings, say: Say, choice: str, index: str, overwrite: bool) -> tuple[str, Path]:
    """Zip a voice with its index (``"auto"``: the paired one; ``""``: none) and ``voice.json``."""
    index_choice = clean_path(index)
    if index_choice not in ("", "auto"):
        index_choice = str(PathPolicy(settings).readable(index_choice, "Index"))
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
    """Import a voice from an uploaded zip or a URL into the weights folder (index into ``assets/indices``).

    Files come only from the upload widget; the URL box takes public http(s) addresses
    (local-network ones with ``--allow-private-urls``) and at most ``max_upload_mb``.
    """
    source = clean_path(upload)
    if not source:
        source = clean_path(url)
        if not source:
            raise ValueError("Upload a voice zip or paste its URL first.")
        try:
            check_url(source)
        except ValueError as exc:
            raise ValueError(
                f"URL: {exc} To import a zip file, use the upload box (the URL box does not read files on the server)."
            ) from exc
    fetch = ckpt.FetchOptions(allow_private_urls=settings.allow_private_urls, max_bytes=settings.max_upload_mb * 2**20)
    voice = ckpt.import_bundle(
        source,
        name=_save_name(name, "Import as"),
        weights_dir=settings.weights_dir,
        indices_dir=settings.assets_dir / "indices",
        overwrite=bool(overwrite),
        fetch=fetch,
    )
    lines = [say("export.imported", name=voice.name, path=str(voice.voice_path))]
    if voice.index_path is not None:
        lines.append(say("export.imported_index", path=str(voice.index_path)))
    return _with_warnings(lines, voice.warnings)
