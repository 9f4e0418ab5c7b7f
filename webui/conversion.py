"""The Convert tab's adapters: widget values → typed requests → ``infer`` calls (no gradio here).

Every function raises the library's own errors (``ValueError``, ``OSError``,
``ConversionError`` ...) with messages meant for the user; the tab turns
them into ``gr.Error`` at the edge.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from config import Settings
from infer.audio import clean_path
from infer.batch import BatchItem, collect_inputs, convert_batch
from infer.cache import ModelCache
from infer.convert import convert_file, prepare
from infer.params import ConversionResult, ConvertParams
from webui.paths import PathPolicy

Progress = Callable[[float, str], None]
OUTPUT_MAX_AGE_S = 6 * 3600  # single conversions are served from a temporary folder for this long


def make_params(
    *,
    speaker_id: float | None,
    key: float | None,
    auto_key: bool,
    f0_method: str,
    index_rate: float,
    filter_radius: float,
    resample_sr: float | None,
    rms_mix_rate: float,
    protect: float,
    f0_curve: str | None = None,
    seed: float | None = None,
) -> ConvertParams:
    """The :class:`ConvertParams` for the widgets' values (empty numbers become their defaults).

    Raises ``ValueError`` listing every value out of range.
    """
    return ConvertParams(
        key=_number(key, "Key", 0.0),
        f0_method=f0_method,
        index_rate=_number(index_rate, "Index rate"),
        filter_radius=int(_number(filter_radius, "Median filter radius", whole=True)),
        resample_sr=int(_number(resample_sr, "Output sample rate", 0, whole=True)),
        rms_mix_rate=_number(rms_mix_rate, "Loudness envelope mix"),
        protect=_number(protect, "Protect voiceless consonants"),
        speaker_id=int(_number(speaker_id, "Speaker id", 0, whole=True)),
        f0_curve=f0_curve or None,
        auto_key=bool(auto_key),
        seed=None if seed is None or seed == "" else int(_number(seed, "Seed", whole=True)),
    )


def _number(value: object, field: str, empty: float | None = None, *, whole: bool = False) -> float:
    """A widget's number as a finite float (``empty`` stands for a blank box); ``ValueError`` naming ``field``."""
    if value is None or value == "":
        if empty is None:
            raise ValueError(f"{field}: enter a number.")
        return empty
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be a number, got {value!r}.") from None
    if not math.isfinite(number):
        raise ValueError(f"{field} must be a finite number, got {value!r}.")
    if whole and number != int(number):
        raise ValueError(f"{field} must be a whole number, got {value!r}.")
    return number


def chosen_index(choice: str | None, index_rate: float, policy: PathPolicy) -> Path | None:
    """The index to use: None for "no index" or index rate 0, else the chosen (or typed) file, which must exist.

    A typed index path must lie in a folder ``policy`` lets the server read.
    """
    text = clean_path(choice or "")
    if not text or index_rate <= 0:
        return None
    path = policy.readable(text, "Index file")
    if not path.is_file():
        raise FileNotFoundError(f"Index file '{path}' does not exist. Choose one from the list, or no index.")
    return path


def chosen_source(upload: str | None, typed_path: str | None, policy: PathPolicy) -> Path:
    """The input audio: a typed server path wins over an upload (as RVC's folder wins over files).

    A typed path must lie in a folder ``policy`` lets the server read; uploads
    were checked by the server's guard (they are this session's own).
    """
    text = clean_path(typed_path or "")
    if text:
        return policy.readable(text, "Input path")
    if upload:
        return Path(upload)
    raise ValueError("Upload an audio file or type the path of one.")


@contextmanager
def uploads_named_by_name(*uploads: str | Path | None) -> Iterator[None]:
    """Errors raised in the block name each upload by its file name, never by its path in the server's cache."""
    try:
        yield
    except (ValueError, OSError) as exc:
        message = str(exc)
        for upload in uploads:
            if upload:
                message = message.replace(str(upload), Path(upload).name)
        if message == str(exc):
            raise
        raise ValueError(message) from exc


@dataclass(frozen=True)
class SingleRequest:
    """One file converted with one voice."""

    voice: Path
    source: Path
    index: Path | None
    params: ConvertParams


@dataclass(frozen=True)
class SingleOutcome:
    """The written WAV, the library's report and the wall-clock seconds it took."""

    output: Path
    result: ConversionResult
    elapsed: float


class OutputFolder:
    """A folder for converted files the browser plays; files older than ``max_age`` seconds are removed."""

    def __init__(self, folder: Path, max_age: float = OUTPUT_MAX_AGE_S) -> None:
        self.folder = Path(folder)
        self.max_age = max_age

    def new_path(self, source: Path, voice: Path, suffix: str = ".wav") -> Path:
        """A fresh path ``<source stem>_<voice stem>_<random>.wav``; prunes old files first."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prune()
        return self.folder / f"{source.stem[:60]}_{voice.stem[:40]}_{uuid.uuid4().hex[:8]}{suffix}"

    def prune(self) -> None:
        limit = time.time() - self.max_age
        for path in self.folder.glob("*"):
            try:
                if path.is_file() and path.stat().st_mtime < limit:
                    path.unlink()
            except OSError:
                continue  # another request removed it first


def run_single(
    request: SingleRequest,
    cache: ModelCache,
    settings: Settings,
    outputs: OutputFolder,
    progress: Progress | None = None,
) -> SingleOutcome:
    """Convert ``request.source`` into a new WAV in ``outputs``; models come from the shared ``cache``."""
    started = time.perf_counter()
    job = prepare(request.voice, cache, request.params, index=request.index, logs_dir=settings.logs_dir)
    output = outputs.new_path(request.source, request.voice)
    result = convert_file(
        job, request.source, output, format="wav", progress=progress, max_seconds=settings.max_input_minutes * 60
    )
    return SingleOutcome(output, result, time.perf_counter() - started)


@dataclass(frozen=True)
class BatchRequest:
    """Many files converted with one voice into ``output_dir`` as ``<stem>.<format>``."""

    voice: Path
    inputs: tuple[Path, ...]
    output_dir: Path
    format: str
    overwrite: bool
    index: Path | None
    params: ConvertParams


def batch_inputs(folder_text: str | None, uploads: Sequence[str] | None, policy: PathPolicy) -> tuple[Path, ...]:
    """The files of the typed input folder (it wins, as in RVC; it must be readable by ``policy``), else the uploads."""
    folder = clean_path(folder_text or "")
    if folder:
        found = collect_inputs(policy.readable(folder, "Input folder"))
        return tuple(policy.readable(path, "Input folder") for path in found)  # no symlink out of the folder
    if uploads:
        return tuple(collect_inputs(list(uploads)))
    raise ValueError("Type an input folder or upload some audio files.")


def output_folder(text: str | None, settings: Settings) -> Path:
    """The typed output folder: ``opt`` or empty is ``settings.output_dir``, a relative one goes under it.

    It must lie inside a folder the server writes (output, weights or logs).
    """
    return PathPolicy(settings).writable_dir(text, "Output folder")


def run_batch(
    request: BatchRequest,
    cache: ModelCache,
    settings: Settings,
    progress: Progress | None = None,
    on_item: Callable[[BatchItem], None] | None = None,
) -> list[BatchItem]:
    """Convert every input (no f0 curve: a curve belongs to one file); one failure never stops the rest."""
    params = replace(request.params, f0_curve=None)
    job = prepare(request.voice, cache, params, index=request.index, logs_dir=settings.logs_dir)
    request.output_dir.mkdir(parents=True, exist_ok=True)
    return convert_batch(
        job,
        list(request.inputs),
        request.output_dir,
        format=request.format,
        overwrite=request.overwrite,
        progress=progress,
        on_item=on_item,
        max_seconds=settings.max_input_minutes * 60,
    )
