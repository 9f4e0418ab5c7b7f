"""Converting audio with a voice: the whole-input path that matches the reference RVC.

``convert_array`` runs RVC's pipeline (spec §8.2–§8.4) on a 16 kHz array that
fits in memory; ``convert_file`` decodes, converts and writes a file, and
hands inputs longer than ``max_block_seconds`` to :mod:`infer.longform`,
which keeps memory flat by working through them block by block.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
import torch

from infer.audio import to_int16
from infer.autokey import choose_key, median_voiced, voice_median_f0
from infer.cache import ModelCache
from infer.frames import HOP_16K, SR_16K
from infer.params import ConversionResult, ConvertParams
from infer.pipeline import (
    ChunkSizes,
    ConversionCancelled,
    SegmentInputs,
    StageTimes,
    change_rms,
    convert_segments,
    highpass,
    split_points,
)
from infer.pitch_track import F0Curve, detect_f0, pitch_inputs
from infer.voice import Voice

Progress = Callable[[float, str], None]
MIN_SECONDS = 0.5
SILENCE_PEAK = 1e-4  # −80 dBFS


class ConversionError(ValueError):
    """The input or the settings cannot be converted; the message says why and what to do."""


@dataclass
class Conversion:
    """A prepared conversion: the voice, models and checked settings (see :func:`prepare`)."""

    voice: Voice
    cache: ModelCache
    params: ConvertParams
    index: object | None = None  # infer.retrieval.FeatureIndex
    sizes: ChunkSizes | None = None
    logs_dir: Path | None = None
    curve: F0Curve | None = None

    def segment_inputs(self, times: StageTimes, cancel: Callable[[], bool] | None) -> SegmentInputs:
        device = self.cache.device
        generator = None
        if self.params.seed is not None:
            generator = torch.Generator(device=device).manual_seed(self.params.seed)
        return SegmentInputs(
            encoder=self.cache.content_encoder(),
            synthesizer=self.voice.synthesizer,
            version=self.voice.version,
            speaker=torch.tensor([self.params.speaker_id], device=device, dtype=torch.long),
            index=self.index,
            index_rate=self.params.index_rate if self.index is not None else 0.0,
            protect=self.params.protect,
            noise_scale=self.params.noise_scale,
            generator=generator,
            times=times,
            cancel=cancel,
        )


def prepare(
    voice: Voice | str | Path,
    cache: ModelCache,
    params: ConvertParams,
    *,
    index: object | str | Path | None = None,
    sizes: ChunkSizes | None = None,
    logs_dir: str | Path | None = None,
) -> Conversion:
    """Load what a conversion needs and check that it fits together (clear errors up front)."""
    if not isinstance(voice, Voice):
        voice = cache.voice(voice)
    if not 0 <= params.speaker_id < voice.n_speakers:
        raise ConversionError(
            f"Speaker id {params.speaker_id} does not exist: voice '{voice.name}' has {voice.n_speakers} "
            f"speaker(s), ids 0 to {voice.n_speakers - 1}."
        )
    if isinstance(index, (str, Path)):
        index = cache.index(index) if str(index) else None
    if index is not None and params.index_rate > 0:
        index.check_dim(voice.feature_dim, voice.name)
    else:
        index = None
    encoder = cache.content_encoder()
    produced = encoder.feature_dim(voice.version)
    if produced != voice.feature_dim:
        raise ConversionError(
            f"The content encoder gives {produced}-d features for {voice.version}, but voice '{voice.name}' "
            f"expects {voice.feature_dim}-d ones: use the content encoder the voice was trained with."
        )
    curve = F0Curve.read(params.f0_curve) if params.f0_curve else None
    return Conversion(
        voice, cache, params, index, sizes or cache.chunk_sizes, Path(logs_dir) if logs_dir else None, curve
    )


def check_input(audio: np.ndarray, source: str = "the input") -> None:
    """Refuse inputs that cannot give a useful result: too short, silent, or not finite."""
    seconds = audio.shape[0] / SR_16K
    if seconds < MIN_SECONDS:
        raise ConversionError(
            f"{source} is too short ({seconds:.2f} s); at least {MIN_SECONDS} s of audio is needed. Check that the right file was chosen."
        )
    if not np.isfinite(audio).all():
        raise ConversionError(f"{source} contains invalid (NaN or infinite) samples.")
    if np.abs(audio).max() < SILENCE_PEAK:
        raise ConversionError(
            f"{source} is silent (nothing above −80 dBFS); there is no voice to convert. Check that the right file was chosen."
        )


def resolve_key(job: Conversion, f0: np.ndarray) -> float:
    """The key to use: the user's, or with auto key the one matching the voice's median pitch."""
    if not job.params.auto_key or not job.voice.use_f0:
        return job.params.key
    voice_median = voice_median_f0(job.voice.metadata, job.voice.name, job.logs_dir)
    return float(choose_key(median_voiced(f0), voice_median, voice_name=job.voice.name))


def convert_array(
    job: Conversion,
    audio16k: np.ndarray,
    *,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    times: StageTimes | None = None,
) -> ConversionResult:
    """Convert a whole 16 kHz mono float array as RVC's ``vc_single`` does.

    Returns int16 audio at the output rate (the voice's, or
    ``params.resample_sr``) in ``ConversionResult.audio``.
    """
    times = times or StageTimes()
    params, voice, sizes = job.params, job.voice, job.sizes
    audio = np.asarray(audio16k, dtype=np.float32)
    check_input(audio)
    peak = np.abs(audio).max() / 0.95
    if peak > 1:
        audio = audio / peak
    _report(progress, 0.02, "filtering")
    with times.measure("postprocess"):
        filtered = highpass(audio)
        cuts = split_points(filtered, sizes)
        padded = np.pad(filtered, (sizes.t_pad, sizes.t_pad), mode="reflect")
    ctx = job.segment_inputs(times, cancel)
    pitch = pitchf = None
    key = params.key
    if voice.use_f0:
        _report(progress, 0.05, f"pitch ({params.f0_method})")
        with times.measure("f0"):
            f0 = detect_f0(
                padded, params.f0_method, filter_radius=params.filter_radius, models=job.cache.pitch_models()
            )
            key = resolve_key(job, f0[sizes.t_pad // HOP_16K : -(sizes.t_pad // HOP_16K) or None])
            coarse, shifted = pitch_inputs(f0, key=key, curve=job.curve, lead_frames=sizes.t_pad // HOP_16K)
            p_len = padded.shape[0] // HOP_16K
            pitch = torch.from_numpy(coarse[:p_len]).to(ctx.speaker.device).unsqueeze(0)
            pitchf = torch.from_numpy(shifted[:p_len]).to(ctx.speaker.device).unsqueeze(0)
    _report(progress, 0.15, "converting")

    def on_segment(done: int, total: int) -> None:
        _report(progress, 0.15 + 0.8 * done / total, f"converting segment {done}/{total}")

    pieces = segments_with_retry(
        padded, cuts, pitch, pitchf, ctx, sizes, voice.sample_rate, final=True, progress=on_segment
    )
    with times.measure("postprocess"):
        out = np.concatenate(pieces)
        if params.rms_mix_rate != 1:
            out = change_rms(filtered, out, voice.sample_rate, params.rms_mix_rate)
        rate = output_rate(voice.sample_rate, params.resample_sr)
        if rate != voice.sample_rate:
            out = soxr.resample(out, voice.sample_rate, rate, quality="VHQ").astype(np.float32)
        result = to_int16(out)
    _report(progress, 0.97, "done")
    return ConversionResult(
        sample_rate=rate,
        audio=result,
        index_path=getattr(job.index, "path", None),
        key=key,
        input_seconds=audio.shape[0] / SR_16K,
        times=times,
        warnings=list(voice.warnings),
    )


def segments_with_retry(
    padded: np.ndarray,
    cuts: list[int],
    pitch: torch.Tensor | None,
    pitchf: torch.Tensor | None,
    ctx: SegmentInputs,
    sizes: ChunkSizes,
    voice_rate: int,
    *,
    final: bool,
    progress: Callable[[int, int], None] | None = None,
) -> list[np.ndarray]:
    """:func:`infer.pipeline.convert_segments`, retried with smaller pieces after a GPU out-of-memory.

    Each retry halves the segment length (``ChunkSizes.smaller``) and adds
    cuts at quiet points of the same audio; when pieces cannot get smaller a
    :class:`ConversionError` says what to do.
    """
    attempt, attempt_cuts = sizes, list(cuts)
    length = cuts[-1] if not final else padded.shape[0] - 2 * sizes.t_pad
    while True:
        try:
            return convert_segments(
                padded,
                attempt_cuts,
                pitch,
                pitchf,
                ctx,
                t_pad=sizes.t_pad,
                t_pad_tgt=voice_rate * sizes.x_pad,
                final=final,
                progress=progress,
            )
        except torch.cuda.OutOfMemoryError as exc:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            smaller = attempt.smaller()
            if smaller == attempt:
                raise ConversionError(
                    f"Ran out of GPU memory even with {attempt.x_center}-second pieces. Close other programs that "
                    "use the GPU, or convert on the CPU (device 'cpu')."
                ) from exc
            attempt = smaller
            extra = split_points(padded[sizes.t_pad : sizes.t_pad + length], attempt)
            rounded = {c // HOP_16K * HOP_16K for c in [*cuts, *extra]}
            rounded = {c for c in rounded if 0 < c < length or (c == length and not final)}
            attempt_cuts = sorted(rounded)


def convert_file(
    job: Conversion,
    source: str | Path,
    output: str | Path,
    *,
    format: str | None = None,
    overwrite: bool = False,
    max_block_seconds: float = 300.0,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    max_seconds: float | None = None,
) -> ConversionResult:
    """Convert the audio file ``source`` and write ``output`` (format from its suffix or ``format``).

    ``max_seconds`` (the web UI's limit) refuses longer inputs, by the header and by the decoded count.

    Inputs up to ``max_block_seconds`` are converted whole (the reference
    path); longer ones block by block with flat memory (:mod:`infer.longform`).
    Nothing is written unless the conversion succeeds; an existing ``output``
    is refused unless ``overwrite``.
    """
    from infer.audio import AudioWriter, audio_info, load_audio

    source, output = Path(source), Path(output)
    if output.exists() and source.exists() and os.path.samefile(source, output):
        raise FileExistsError(
            f"The output '{output}' is the input file itself; choose another output name (the input was kept)."
        )
    if output.exists() and not overwrite:
        raise FileExistsError(f"'{output}' already exists; choose another name or allow overwriting.")
    info = audio_info(source)
    from infer.longform import convert_long, too_long

    if max_seconds is not None and info.duration is not None and info.duration > max_seconds:
        raise too_long(source, info.duration, max_seconds)
    if info.duration is None or info.duration > max_block_seconds:
        return convert_long(
            job,
            source,
            output,
            format=format,
            overwrite=overwrite,
            max_block_seconds=max_block_seconds,
            progress=progress,
            cancel=cancel,
            max_seconds=max_seconds,
        )
    times = StageTimes()
    with times.measure("decode"):
        audio = load_audio(source, SR_16K)
    if max_seconds is not None and audio.shape[0] > max_seconds * SR_16K:
        raise too_long(source, audio.shape[0] / SR_16K, max_seconds)
    check_input(audio, f"'{source}'")
    result = convert_array(job, audio, progress=progress, cancel=cancel, times=times)
    with times.measure("write"):
        with AudioWriter(output, result.sample_rate, format=format, overwrite=overwrite) as writer:
            writer.write(result.audio)
    result.output_path = output
    _report(progress, 1.0, "done")
    return result


def output_rate(voice_rate: int, resample_sr: int) -> int:
    """RVC's rule: resample only when asked for a different rate of at least 16 kHz."""
    return resample_sr if resample_sr >= 16000 and resample_sr != voice_rate else voice_rate


def _report(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(min(max(fraction, 0.0), 1.0), message)


__all__ = [
    "Conversion",
    "ConversionCancelled",
    "ConversionError",
    "ConvertParams",
    "check_input",
    "convert_array",
    "convert_file",
    "output_rate",
    "prepare",
]
