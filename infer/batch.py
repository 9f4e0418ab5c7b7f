"""Converting many files with one voice: RVC's batch conversion (spec §8.5), made safe.

Differences from RVC's ``vc_multi``: outputs are ``<output_dir>/<stem>.<format>``
(never ``a.wav.flac``), files that are not audio are skipped with a reason
instead of failing, hidden files are ignored, an existing output is refused
unless ``overwrite``, two inputs that would write the same output (``a.wav`` and
``a.mp3``) do not overwrite each other, and one failed file does not stop the
batch.  The models are loaded once: every file uses the same prepared
:class:`~infer.convert.Conversion`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from infer.audio import AudioFileError, audio_info, output_path_for
from infer.convert import Conversion, convert_file
from infer.params import ConversionResult
from infer.pipeline import ConversionCancelled

Progress = Callable[[float, str], None]
STATUSES = ("converted", "skipped", "failed")

# Files with these suffixes are meant to be audio: when they cannot be decoded that is a
# failure to report, while any other undecodable file (notes, images, ...) is just skipped.
AUDIO_SUFFIXES = frozenset(
    ".wav .wave .flac .mp3 .m4a .aac .ogg .oga .opus .wma .aif .aiff .aifc .caf .ape .wv .mka .mp4 "
    ".m4v .mkv .mov .webm .avi .3gp .amr .ac3 .au .snd .w64".split()
)


@dataclass
class BatchItem:
    """What happened to one input of a batch.

    ``status`` is ``"converted"``, ``"skipped"`` (not audio, or cancelled)
    or ``"failed"`` (``message`` says why and what to do).  ``output`` is the
    written file (None unless converted); ``result`` is the conversion report
    (its ``audio`` is dropped so that a long batch does not hold every output
    in memory).
    """

    input: Path
    output: Path | None
    status: str
    message: str = ""
    result: ConversionResult | None = None

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary: paths as strings, sample rate, durations and timings when converted."""
        data: dict[str, object] = {
            "input": str(self.input),
            "output": str(self.output) if self.output else None,
            "status": self.status,
            "message": self.message,
        }
        if self.result is not None:
            data.update(
                sample_rate=self.result.sample_rate,
                input_duration=round(self.result.input_seconds, 3),
                key=self.result.key,
                index=str(self.result.index_path) if self.result.index_path else None,
                timings=self.result.times.as_dict(),
            )
        return data


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def collect_inputs(dir_or_files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The files a batch should look at.

    A folder gives its visible regular files, sorted by name (not recursive,
    like RVC; whether each is audio is decided later by trying to read it).
    A list of files is kept in order, without duplicates (hidden names are
    kept there: the user named them).  Raises ``FileNotFoundError`` for a folder that does not exist and
    ``NotADirectoryError`` when a single path is a file (pass it in a list).
    """
    if isinstance(dir_or_files, (str, os.PathLike)):
        folder = Path(dir_or_files)
        if not folder.exists():
            raise FileNotFoundError(f"Input folder '{folder}' does not exist. Check the path.")
        if not folder.is_dir():
            raise NotADirectoryError(f"'{folder}' is a file, not a folder; pass it as a list of files instead.")
        return sorted((p for p in folder.iterdir() if p.is_file() and not _is_hidden(p)), key=lambda p: p.name)
    seen: set[Path] = set()
    files: list[Path] = []
    for item in map(Path, dir_or_files):
        if item not in seen:
            seen.add(item)
            files.append(item)
    return files


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _check_audio(source: Path) -> BatchItem | None:
    """None when ``source`` looks like audio, else a skipped/failed item saying why."""
    if not source.is_file():
        return BatchItem(source, None, "failed", f"'{source}' does not exist or is not a file.")
    try:
        audio_info(source)
    except AudioFileError as exc:
        if source.suffix.lower() in AUDIO_SUFFIXES:
            return BatchItem(source, None, "failed", str(exc))
        return BatchItem(source, None, "skipped", f"not an audio file ({source.name} cannot be decoded)")
    return None


def convert_batch(
    job: Conversion,
    inputs: list[Path],
    output_dir: str | os.PathLike[str],
    *,
    format: str = "wav",
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    on_item: Callable[[BatchItem], None] | None = None,
    max_block_seconds: float = 300.0,
    max_seconds: float | None = None,
) -> list[BatchItem]:
    """Convert every audio file in ``inputs`` into ``output_dir/<stem>.<format>``.

    ``job`` comes from :func:`infer.convert.prepare` and is shared by all files,
    so models load once.  ``format`` is one of ``SUPPORTED_OUTPUT_FORMATS``.
    ``progress(fraction, message)`` covers the whole batch; ``cancel()`` is
    polled between and inside files (the current and remaining files are then
    reported as skipped); ``on_item`` gets each item as soon as it is done.
    Returns one :class:`BatchItem` per input, in order.  Errors in one file
    never stop the batch; nothing is written for a failed file.
    """
    output_dir = Path(output_dir)
    items: list[BatchItem] = []
    claimed: dict[Path, Path] = {}  # output -> the input that writes it
    total = max(len(inputs), 1)
    for number, source in enumerate(map(Path, inputs)):
        if cancel is not None and cancel():
            item = BatchItem(source, None, "skipped", "cancelled")
        else:
            item = _convert_one(
                job,
                source,
                output_dir,
                claimed,
                format=format,
                overwrite=overwrite,
                progress=_sub_progress(progress, number, total, source.name),
                cancel=cancel,
                max_block_seconds=max_block_seconds,
                max_seconds=max_seconds,
            )
        items.append(item)
        if on_item is not None:
            on_item(item)
        if progress is not None:
            progress((number + 1) / total, f"{source.name}: {item.status}")
    return items


def _convert_one(
    job: Conversion,
    source: Path,
    output_dir: Path,
    claimed: dict[Path, Path],
    *,
    format: str,
    overwrite: bool,
    progress: Progress | None,
    cancel: Callable[[], bool] | None,
    max_block_seconds: float,
    max_seconds: float | None,
) -> BatchItem:
    rejected = _check_audio(source)
    if rejected is not None:
        return rejected
    output = output_path_for(source, output_dir, format)
    if output in claimed:
        return BatchItem(
            source,
            None,
            "failed",
            f"'{source.name}' would also be written to '{output}' (already used by '{claimed[output].name}'); "
            "rename one of them or convert it separately.",
        )
    if _same_file(source, output):
        return BatchItem(
            source,
            None,
            "failed",
            f"the output '{output}' would replace the input itself; choose another output folder or format.",
        )
    claimed[output] = source
    try:
        result = convert_file(
            job,
            source,
            output,
            format=format,
            overwrite=overwrite,
            max_block_seconds=max_block_seconds,
            max_seconds=max_seconds,
            progress=progress,
            cancel=cancel,
        )
    except ConversionCancelled:
        return BatchItem(source, None, "skipped", "cancelled")
    except FileExistsError:
        return BatchItem(source, None, "failed", f"'{output}' already exists; allow overwriting to replace it.")
    except Exception as exc:  # one bad file must not stop the batch; the message is reported
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, (ValueError, OSError)):
            text = f"{type(exc).__name__}: {text}"
        return BatchItem(source, None, "failed", text)
    result.audio = None
    return BatchItem(source, output, "converted", f"{result.input_seconds:.1f} s converted", result)


def _sub_progress(progress: Progress | None, number: int, total: int, name: str) -> Progress | None:
    """Maps one file's progress (0..1) onto its share of the batch."""
    if progress is None:
        return None

    def report(fraction: float, message: str) -> None:
        progress((number + min(max(fraction, 0.0), 1.0)) / total, f"[{number + 1}/{total}] {name}: {message}")

    return report


def summarize(items: list[BatchItem]) -> dict[str, int]:
    """Counts per status, e.g. ``{"converted": 3, "skipped": 1, "failed": 0}``."""
    return {status: sum(item.status == status for item in items) for status in STATUSES}
