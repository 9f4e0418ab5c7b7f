"""The worker side of step 2: extracting pitch or content features for a list of files.

A job is a frozen dataclass of plain strings, so it pickles into a spawned
process; the worker loads its model once and then walks its files.  Workers
never print or log themselves: they report through ``emit`` with small tuples,

* ``("log", line)``, ``("done", wav_name)``, ``("failed", wav_name, reason)``;
* only from :func:`process_main`: ``("fatal", worker, error_type, message)``
  (the model could not be loaded) and ``("finished", worker)``.

:mod:`train.extract` runs one job in-process, or several through
:func:`process_main` with a queue; it owns the log file, progress and report.
Every output is written atomically, so a killed worker never leaves half a file.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Emit = Callable[[tuple], None]
ShouldStop = Callable[[], bool]

PITCH_LOG_LINES = 5  # RVC logs about 5 progress lines per f0 process ...
FEATURE_LOG_LINES = 10  # ... and about 10 per feature process


@dataclass(frozen=True)
class PitchJob:
    """Pitch for ``wavs`` (16 kHz files) → ``hz_dir/<name>.npy`` (float32 Hz) and ``coarse_dir/<name>.npy`` (int64)."""

    worker: int
    wavs: tuple[str, ...]
    method: str
    device: str
    hz_dir: str
    coarse_dir: str
    rmvpe_path: str | None = None
    threads: int | None = None


@dataclass(frozen=True)
class FeatureJob:
    """Content features for ``wavs`` → ``out_dir/<stem>.npy``, float32 (T, D)."""

    worker: int
    wavs: tuple[str, ...]
    version: str
    device: str
    half: bool
    encoder_path: str
    out_dir: str
    threads: int | None = None


def save_npy_atomic(array: np.ndarray, path: Path) -> None:
    """``np.save(..., allow_pickle=False)`` to exactly ``path`` (no ``.npy`` appended), atomically."""
    from infer.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def pitch_output_paths(job: PitchJob, wav: Path) -> tuple[Path, Path]:
    """(Hz path, coarse path) for one input: ``<wav name>.npy`` in each folder, as RVC names them."""
    return Path(job.hz_dir) / f"{wav.name}.npy", Path(job.coarse_dir) / f"{wav.name}.npy"


def feature_output_path(job: FeatureJob, wav: Path) -> Path:
    return Path(job.out_dir) / f"{wav.stem}.npy"


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def _log_every(count: int, lines: int) -> int:
    return max(count // lines, 1)


def run_pitch_job(job: PitchJob, emit: Emit, should_stop: ShouldStop) -> None:
    """Extract pitch for every file of ``job``; per-file errors are reported, model errors raise."""
    from infer.audio import load_audio
    from infer.f0 import CREPE_VARIANTS, PitchModels, coarse_f0, compute_f0

    models = PitchModels(job.device, rmvpe_path=job.rmvpe_path)
    if job.method == "rmvpe":  # load the network before the first file, so a bad model file fails at once
        models.rmvpe()
    elif job.method in CREPE_VARIANTS:
        models.crepe(CREPE_VARIANTS[job.method])
    elif job.method == "fcpe":
        models.fcpe()
    every = _log_every(len(job.wavs), PITCH_LOG_LINES)
    for index, name in enumerate(job.wavs):
        if should_stop():
            emit(("log", f"f0 worker {job.worker}: cancelled before {Path(name).name}"))
            return
        wav = Path(name)
        if index % every == 0:
            emit(("log", f"f0ing,now-{index},all-{len(job.wavs)},-{wav}"))
        try:
            f0 = compute_f0(load_audio(wav, 16000), job.method, models=models)
            hz_path, coarse_path = pitch_output_paths(job, wav)
            save_npy_atomic(f0.astype(np.float32), hz_path)
            save_npy_atomic(coarse_f0(f0), coarse_path)
        except Exception as exc:  # one bad file must not stop the others
            emit(("log", f"f0fail-{index}-{wav}-{_reason(exc)}"))
            emit(("failed", wav.name, _reason(exc)))
            continue
        emit(("done", wav.name))


def run_feature_job(job: FeatureJob, emit: Emit, should_stop: ShouldStop) -> None:
    """Extract content features for every file of ``job``; files giving NaN are reported, not saved."""
    import torch

    from infer.audio import load_audio
    from infer.content import load_content_encoder

    emit(("log", f"load model(s) from {job.encoder_path}"))
    dtype = torch.float16 if job.half else torch.float32
    encoder = load_content_encoder(job.encoder_path, device=job.device, dtype=dtype)
    encoder.feature_dim(job.version)  # raises at once if this encoder cannot make these features
    emit(("log", f"move model to {encoder.device} ({'fp16' if job.half else 'fp32'})"))
    every = _log_every(len(job.wavs), FEATURE_LOG_LINES)
    for index, name in enumerate(job.wavs):
        if should_stop():
            emit(("log", f"feature worker {job.worker}: cancelled before {Path(name).name}"))
            return
        wav = Path(name)
        try:
            audio = load_audio(wav, 16000)
            if len(audio) < encoder.min_samples:
                raise ValueError(f"{len(audio)} samples is shorter than the encoder's {encoder.min_samples}")
            features = encoder.extract(audio, job.version)
            if np.isnan(features).any():
                emit(("log", f"{wav.name}-contains nan"))
                emit(("failed", wav.name, "the features contain NaN (is the audio broken?); not saved"))
                continue
            save_npy_atomic(features.astype(np.float32, copy=False), feature_output_path(job, wav))
        except Exception as exc:  # one bad file must not stop the others
            emit(("log", f"featurefail-{index}-{wav}-{_reason(exc)}"))
            emit(("failed", wav.name, _reason(exc)))
            continue
        if index % every == 0:
            emit(("log", f"now-{index},all-{len(job.wavs)},{wav.name},{features.shape}"))
        emit(("done", wav.name))


def process_main(job: PitchJob | FeatureJob, queue: Any, stop: Any) -> None:
    """Entry point of a spawned worker process: run ``job``, reporting through ``queue``.

    ``stop`` is a multiprocessing ``Event``; the worker stops between files when
    it is set.  A failure to load the model is sent as ``("fatal", ...)``; the
    last message is always ``("finished", worker)``.
    """
    try:
        if job.threads:
            import torch

            torch.set_num_threads(job.threads)
        run = run_pitch_job if isinstance(job, PitchJob) else run_feature_job
        run(job, queue.put, stop.is_set)
    except Exception as exc:
        queue.put(("log", f"worker {job.worker} stopped: {traceback.format_exc().strip()}"))
        queue.put(("fatal", job.worker, type(exc).__name__, str(exc)))
    finally:
        queue.put(("finished", job.worker))
