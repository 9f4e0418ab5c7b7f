"""What the Convert tab offers: the voices in ``weights/``, the index files, and which index fits a voice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config import Settings
from infer.cache import ModelCache
from infer.index_pairing import find_index_for_voice, list_indexes

VOICE_SUFFIX = ".pth"


def list_voices(settings: Settings) -> list[str]:
    """File names (``alice.pth``) of the voice models directly in the weights folder, sorted."""
    folder = settings.weights_dir
    if not folder.is_dir():
        return []
    return sorted(
        (p.name for p in folder.iterdir() if p.suffix.lower() == VOICE_SUFFIX and p.is_file()),
        key=str.lower,
    )


def voice_file(settings: Settings, name: str | None) -> Path:
    """The path of the voice ``name`` from :func:`list_voices`.

    Raises ``ValueError`` when no voice is chosen, and ``FileNotFoundError``
    when the name is not a voice file in the weights folder (deleted, or a path
    that tries to leave the folder).
    """
    if not name:
        raise ValueError("Choose a voice first.")
    path = settings.weights_dir / name
    if Path(name).name != name or not path.is_file():
        raise FileNotFoundError(
            f"Voice '{name}' is not in '{settings.weights_dir}'. Refresh the voice list and choose again."
        )
    return path


def index_search_dirs(settings: Settings) -> list[Path]:
    """Where index files are looked for: the experiments, ``assets/indices`` and the weights folder."""
    candidates = [settings.logs_dir, settings.assets_dir / "indices", settings.weights_dir]
    return [d for d in candidates if d.is_dir()]


def list_index_choices(settings: Settings, none_label: str) -> list[tuple[str, str]]:
    """Dropdown choices ``(label, path)`` for every usable index; the first, ``(none_label, "")``, means no index."""
    choices = [(none_label, "")]
    for path in list_indexes(*index_search_dirs(settings)):
        choices.append((_short_name(path, settings), str(path)))
    return choices


def _short_name(path: Path, settings: Settings) -> str:
    for base in (settings.logs_dir, settings.assets_dir, settings.weights_dir):
        try:
            return f"{base.name}/{path.relative_to(base).as_posix()}"
        except ValueError:
            continue
    return str(path)


def paired_index(settings: Settings, voice: Path) -> str:
    """The path of the index trained for ``voice`` (exact name match), or ``""`` when there is none."""
    found = find_index_for_voice(voice, index_search_dirs(settings))
    return str(found) if found is not None else ""


@dataclass(frozen=True)
class VoiceSummary:
    """What the UI shows about a voice and adapts its controls to."""

    name: str
    version: str
    sample_rate: int
    use_f0: bool
    n_speakers: int
    info: str


def summarize_voice(cache: ModelCache, path: Path) -> VoiceSummary:
    """Load ``path`` through the shared cache (so the next conversion starts at once) and describe it."""
    voice = cache.voice(path)
    return VoiceSummary(path.stem, voice.version, voice.sample_rate, voice.use_f0, voice.n_speakers, voice.info)
