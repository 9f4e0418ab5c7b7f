"""Long inputs with flat memory: the same pipeline, worked through block by block.

RVC holds the whole input and output in memory.  Here a long file is decoded
and high-passed into a temporary float64 file (phase 1: float64 like the
whole-input path, so the quiet-point cuts land on the same samples), converted in blocks
of whole segments — cut at the same quiet points the whole-input path uses —
while the loudness envelope and resampling run as streams (phase 2), and the
result is scaled to int16 and encoded (phase 3).  Memory depends on the block
length, not on the input length.  Results equal the whole-input path except
near block borders, where pitch and the high-pass see a finite context
(docs/differences.md).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soxr

from infer.audio import AudioWriter, iter_audio
from infer.autokey import choose_key, median_voiced, voice_median_f0
from infer.convert import (
    MIN_SECONDS,
    SILENCE_PEAK,
    Conversion,
    ConversionError,
    Progress,
    output_rate,
    segments_with_retry,
)
from infer.envelope import EnvelopeStream, input_envelope
from infer.f0 import compute_f0
from infer.frames import HOP_16K, SR_16K, output_samples, synth_frames
from infer.memory import trim_heap
from infer.params import ConversionResult
from infer.pipeline import (
    ConversionCancelled,
    StageTimes,
    highpass,
    reflect_indices,
    split_points_from,
)
from infer.pitch_track import detect_f0, pitch_inputs

FILTER_MARGIN = SR_16K  # context for the zero-phase high-pass at block borders
F0_MARGIN = 2 * SR_16K  # context for pitch at block borders (a multiple of 160)
READ_BLOCK = 30 * SR_16K


class FilteredAudio:
    """High-passed 16 kHz audio in a temporary raw float64 file, read back by range."""

    def __init__(self, path: Path, length: int, scale: float) -> None:
        self.path, self.length, self.scale = path, length, scale

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` (clipped to the file) as float64, peak-scaled."""
        start, stop = max(start, 0), min(stop, self.length)
        with open(self.path, "rb") as handle:
            handle.seek(8 * start)
            data = np.fromfile(handle, dtype=np.float64, count=max(stop - start, 0))
        return data * self.scale

    def reflect_read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` of the signal reflected at both ends (``np.pad(..., "reflect")``)."""
        index = reflect_indices(start, stop, self.length)
        low, high = int(index.min()), int(index.max()) + 1
        return self.read(low, high)[index - low]


def _filter_to_file(
    source: Path, target: Path, cancel: Callable[[], bool] | None, auto_key: bool, max_seconds: float | None = None
) -> tuple[int, float, list[np.ndarray]]:
    """Decode and high-pass ``source`` into ``target``; returns (length, raw peak, pm f0 for auto key).

    Stops with :func:`too_long` as soon as more than ``max_seconds`` have been decoded.
    """
    buffer = np.zeros(0)
    buffer_start = written = length = 0
    peak = 0.0
    f0_parts: list[np.ndarray] = []
    with open(target, "wb") as out:

        def flush(upto: int, final: bool) -> None:
            nonlocal buffer, buffer_start, written
            while written < upto:
                stop = upto if final else min(written + READ_BLOCK, upto)
                lo = max(written - FILTER_MARGIN, 0)
                hi = stop if final else min(stop + FILTER_MARGIN, buffer_start + buffer.shape[0])
                filtered = highpass(buffer[lo - buffer_start : hi - buffer_start])
                chunk = filtered[written - lo : stop - lo]
                chunk.tofile(out)
                if auto_key and chunk.shape[0] >= SR_16K:
                    f0_parts.append(compute_f0(chunk, "pm"))
                written = stop
            keep = max(written - FILTER_MARGIN, buffer_start)
            buffer, buffer_start = buffer[keep - buffer_start :], keep

        for block in iter_audio(source, SR_16K, block_samples=READ_BLOCK):
            if cancel is not None and cancel():
                raise ConversionCancelled("Conversion cancelled.")
            peak = max(peak, float(np.abs(block).max(initial=0.0)))
            buffer = np.concatenate([buffer, block.astype(np.float64)])
            length += block.shape[0]
            if max_seconds is not None and length > max_seconds * SR_16K:
                raise too_long(source, None, max_seconds)
            if length - written >= READ_BLOCK + FILTER_MARGIN:
                flush(length - FILTER_MARGIN, final=False)
        if length - written > 0:
            flush(length, final=True)
    return length, peak, f0_parts


def too_long(source: Path, seconds: float | None, max_seconds: float) -> ConversionError:
    """The refusal of an input longer than ``max_seconds`` (``seconds`` when known)."""
    length = f" is {_clock(seconds)} long;" if seconds is not None else " is longer than that;"
    return ConversionError(
        f"'{source}'{length} this server converts at most {_clock(max_seconds)} per file. "
        "Cut it into parts, or ask the server's owner to raise --max-input-minutes."
    )


def _clock(seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _blocks(cuts: list[int], length: int, per_block: int) -> Iterator[tuple[int, int, list[int], bool]]:
    """Group segments into blocks: (start, end, cuts inside incl. the end, is_last), unpadded samples."""
    rounded = [c // HOP_16K * HOP_16K for c in cuts]
    start = 0
    while True:
        inside = rounded[:per_block]
        rounded = rounded[per_block:]
        if not rounded:
            yield start, length, inside, True
            return
        yield start, inside[-1], inside, False
        start = inside[-1]


def output_length(cuts: list[int], length: int, t_pad: int, rate: int, x_pad: int) -> int:
    """Samples the whole-input path produces for these cuts (RVC's per-segment trimming)."""
    rounded = [c // HOP_16K * HOP_16K for c in cuts]
    bounds = [0, *rounded]
    spans = [b - a + 2 * t_pad + HOP_16K for a, b in zip(bounds[:-1], bounds[1:])]
    spans.append(length + 2 * t_pad - bounds[-1])
    return sum(output_samples(synth_frames(n), rate) - 2 * rate * x_pad for n in spans)


def convert_long(
    job: Conversion,
    source: Path,
    output: Path,
    *,
    format: str | None = None,
    overwrite: bool = False,
    max_block_seconds: float = 300.0,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    max_seconds: float | None = None,
) -> ConversionResult:
    """Convert ``source`` into ``output`` block by block (memory independent of the length).

    ``max_seconds`` refuses inputs that decode to more than that (counted, not taken from the header).
    """
    times = StageTimes()
    params, voice, sizes = job.params, job.voice, job.sizes
    with tempfile.TemporaryDirectory(prefix="rvc-studio-") as tmp:
        filtered_path, output_path = Path(tmp) / "input.f64", Path(tmp) / "output.f32"
        _report(progress, 0.0, "decoding")
        with times.measure("decode"):
            length, peak, f0_parts = _filter_to_file(
                source, filtered_path, cancel, params.auto_key and voice.use_f0, max_seconds
            )
        if length < MIN_SECONDS * SR_16K:
            raise ConversionError(f"'{source}' is too short ({length / SR_16K:.2f} s).")
        if peak < SILENCE_PEAK:
            raise ConversionError(f"'{source}' is silent (nothing above −80 dBFS); there is no voice to convert.")
        audio = FilteredAudio(filtered_path, length, 1 / (peak / 0.95) if peak / 0.95 > 1 else 1.0)
        key = params.key
        if params.auto_key and voice.use_f0:
            voice_median = voice_median_f0(voice.metadata, voice.name, job.logs_dir)
            key = float(choose_key(median_voiced(np.concatenate(f0_parts)), voice_median, voice_name=voice.name))
        with times.measure("postprocess"):
            cuts = split_points_from(audio.reflect_read, length, sizes)
        rate = output_rate(voice.sample_rate, params.resample_sr)
        total_out = output_length(cuts, length, sizes.t_pad, voice.sample_rate, sizes.x_pad)
        mixer = None
        if params.rms_mix_rate != 1:
            mixer = EnvelopeStream(
                input_envelope(audio.read, length), voice.sample_rate, total_out, params.rms_mix_rate
            )
        resampler = (
            soxr.ResampleStream(voice.sample_rate, rate, 1, dtype="float32", quality="VHQ")
            if rate != voice.sample_rate
            else None
        )
        ctx = job.segment_inputs(times, cancel)
        per_block = max(1, int(max_block_seconds // sizes.x_center))
        out_peak = 0.0
        with open(output_path, "wb") as out:

            def emit(samples: np.ndarray, last: bool) -> None:
                nonlocal out_peak
                if mixer is not None:
                    samples = mixer.push(samples, last)
                if resampler is not None:
                    samples = resampler.resample_chunk(samples.astype(np.float32), last=last)
                out_peak = max(out_peak, float(np.abs(samples).max(initial=0.0)))
                samples.astype(np.float32).tofile(out)

            for start, end, inside, last in _blocks(cuts, length, per_block):
                _report(
                    progress, 0.05 + 0.85 * start / length, f"converting {start / SR_16K:.0f}/{length / SR_16K:.0f} s"
                )
                stop = length + 2 * sizes.t_pad if last else end + 2 * sizes.t_pad + HOP_16K
                local = audio.reflect_read(start - sizes.t_pad, stop - sizes.t_pad)
                pitch = pitchf = None
                if voice.use_f0:
                    with times.measure("f0"):
                        pitch, pitchf = _block_pitch(job, audio, start, stop, local.shape[0], key, ctx.speaker.device)
                pieces = segments_with_retry(
                    local, [c - start for c in inside], pitch, pitchf, ctx, sizes, voice.sample_rate, final=last
                )
                with times.measure("postprocess"):
                    emit(np.concatenate(pieces), last)
                del pieces, local, pitch, pitchf
                release_memory()
        _report(progress, 0.92, "writing")
        with times.measure("write"):
            scale = 32768 / (out_peak / 0.99) if out_peak / 0.99 > 1 else 32768
            writer = AudioWriter(output, rate, format=format, overwrite=overwrite)
            with writer, open(output_path, "rb") as handle:
                while True:
                    chunk = np.fromfile(handle, dtype=np.float32, count=READ_BLOCK)
                    if chunk.size == 0:
                        break
                    writer.write((chunk * scale).astype(np.int16))
    _report(progress, 1.0, "done")
    return ConversionResult(
        sample_rate=rate,
        output_path=output,
        index_path=getattr(job.index, "path", None),
        key=key,
        input_seconds=length / SR_16K,
        times=times,
        warnings=list(voice.warnings),
    )


def _block_pitch(job: Conversion, audio: FilteredAudio, start: int, stop: int, local_len: int, key: float, device):
    """Pitch tensors for one block (padded coordinates ``[start, stop)``), computed with extra context."""
    import torch

    sizes = job.sizes
    padded_len = audio.length + 2 * sizes.t_pad
    lo, hi = max(start - F0_MARGIN, 0), min(stop + F0_MARGIN, padded_len)
    region = audio.reflect_read(lo - sizes.t_pad, hi - sizes.t_pad)
    f0 = detect_f0(
        region, job.params.f0_method, filter_radius=job.params.filter_radius, models=job.cache.pitch_models()
    )
    first = (start - lo) // HOP_16K
    frames = local_len // HOP_16K
    f0 = np.pad(f0[first : first + frames], (0, max(0, frames - (len(f0) - first))))
    coarse, shifted = pitch_inputs(
        f0, key=key, curve=job.curve, first_frame=start // HOP_16K, lead_frames=sizes.t_pad // HOP_16K
    )
    return (torch.from_numpy(coarse).to(device).unsqueeze(0), torch.from_numpy(shifted).to(device).unsqueeze(0))


def release_memory() -> None:
    """Give cached GPU memory and the C heap's free pages back between blocks."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    trim_heap()


def _report(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(min(max(fraction, 0.0), 1.0), message)
