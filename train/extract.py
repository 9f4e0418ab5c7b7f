"""Training step 2: pitch (f0) and content features for every slice of an experiment (spec §3, §4).

Inputs are ``logs/<exp>/1_16k_wavs/*.wav``.  :func:`extract_pitch` writes
``2b-f0nsf/<name>.wav.npy`` (float32 Hz, 0 = unvoiced) and
``2a_f0/<name>.wav.npy`` (int64 coarse pitch 1..255), one value per 10 ms
frame, ``len // 160`` frames.  :func:`extract_features` writes
``3_feature256|768/<name>.npy`` (float32 (T, D), 20 ms frames).

Both resume (files whose outputs exist are skipped), write atomically, keep
going past a bad file (reported by name), stop between files when ``cancel()``
returns True, and append RVC-style lines to ``extract_f0_feature.log``.  Several
workers run as spawned processes, each loading its model once; one worker runs
in this process.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from infer.assets import asset_path
from infer.devices import default_half, resolve_device
from infer.f0 import F0_METHODS
from infer.models.config import FEATURE_DIMS
from infer.safe_load import ModelFileError
from train.experiment import ExperimentPaths
from train.extract_workers import (
    FeatureJob,
    PitchJob,
    feature_output_path,
    pitch_output_paths,
    process_main,
    run_feature_job,
    run_pitch_job,
)
from train.resources import worker_threads

Progress = Callable[[float, str], None]
NETWORK_F0_METHODS = ("rmvpe", "crepe", "crepe-tiny", "fcpe")
RMVPE_DOWNLOAD = "python tools/download_models.py --only rmvpe"
HUBERT_DOWNLOAD = "python tools/download_models.py --only hubert_base"
_POLL_SECONDS = 0.1


class ExtractError(ValueError):
    """Extraction cannot run (no preprocessed audio, or a worker could not load its model)."""


@dataclass
class ExtractReport:
    """What one extraction run did; ``failed`` holds (wav file name, reason)."""

    done: int
    skipped: int
    failed: list[tuple[str, str]]
    seconds: float
    what: str = ""
    cancelled: bool = False

    def text(self) -> str:
        """A short human-readable summary, one failure per line."""
        head = f"{self.what}: " if self.what else ""
        lines = [
            f"{head}{self.done} extracted, {self.skipped} already present, {len(self.failed)} failed "
            f"in {self.seconds:.1f} s" + (" (cancelled; run again to resume)" if self.cancelled else "")
        ]
        lines += [f"  failed {name}: {reason}" for name, reason in self.failed]
        return "\n".join(lines)


class _Run:
    """Collects worker events: counts, progress, the log file and the log callback."""

    def __init__(
        self,
        paths: ExperimentPaths,
        total: int,
        skipped: int,
        what: str,
        progress: Progress | None,
        log: Callable[[str], None] | None,
    ) -> None:
        self.log_path = paths.extract_log
        self.total, self.skipped, self.what = total, skipped, what
        self.progress, self.log_callback = progress, log
        self.done: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.fatal: tuple[str, str] | None = None
        self.started = time.monotonic()

    def log(self, line: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        if self.log_callback is not None:
            self.log_callback(line)

    def report_progress(self) -> None:
        if self.progress is not None:
            finished = self.skipped + len(self.done) + len(self.failed)
            self.progress(finished / self.total if self.total else 1.0, f"{self.what} {finished}/{self.total}")

    def handle(self, event: tuple) -> None:
        kind = event[0]
        if kind == "log":
            self.log(event[1])
        elif kind == "done":
            self.done.append(event[1])
            self.report_progress()
        elif kind == "failed":
            self.failed.append((event[1], event[2]))
            self.report_progress()
        elif kind == "fatal" and self.fatal is None:
            self.fatal = (event[2], event[3])

    def reported(self) -> set[str]:
        return set(self.done) | {name for name, _ in self.failed}

    def report(self, cancelled: bool) -> ExtractReport:
        seconds = time.monotonic() - self.started
        return ExtractReport(len(self.done), self.skipped, list(self.failed), seconds, self.what, cancelled)


def _wav_files(paths: ExperimentPaths) -> list[Path]:
    if not paths.wavs16k.is_dir():
        raise ExtractError(
            f"'{paths.root}' has no {paths.wavs16k.name} folder: run preprocessing first "
            f"(`python -m train preprocess`)."
        )
    return sorted(p for p in paths.wavs16k.iterdir() if p.suffix.lower() == ".wav" and p.is_file())


def _split(files: Sequence[Path], parts: int) -> list[tuple[str, ...]]:
    """Round-robin: file k goes to part k mod ``parts`` (as RVC); empty parts are dropped."""
    chunks = [tuple(str(f) for f in files[index::parts]) for index in range(parts)]
    return [chunk for chunk in chunks if chunk]


def _resolve_devices(devices: Sequence[str]) -> list[str]:
    if isinstance(devices, str):
        devices = [devices]
    if not devices:
        raise ValueError("devices is empty; pass e.g. ('cpu',) or ('cuda:0', 'cuda:1').")
    return [str(resolve_device(device)) for device in devices]


def _execute(jobs: list, run_one: Callable, run: _Run, cancel: Callable[[], bool] | None) -> bool:
    """Run the jobs (in this process when there is one); returns whether files were left undone (cancelled)."""
    if len(jobs) > 1:
        _run_processes(jobs, run, cancel)
    elif jobs:
        try:
            run_one(jobs[0], run.handle, cancel or (lambda: False))
        except Exception as exc:
            run.log(f"error: {type(exc).__name__}: {exc}")
            raise
    return len(run.reported()) < sum(len(job.wavs) for job in jobs)


def _run_processes(jobs: list, run: _Run, cancel: Callable[[], bool] | None) -> None:
    """One spawned process per job; events are handled here, in the calling thread."""
    context = multiprocessing.get_context("spawn")
    events, stop = context.Queue(), context.Event()
    processes = {
        job.worker: context.Process(target=process_main, args=(job, events, stop), daemon=True) for job in jobs
    }
    for process in processes.values():
        process.start()
    running, cancelled = set(processes), False
    try:
        while running:
            if cancel is not None and not cancelled and cancel():
                cancelled = True
                stop.set()
            if not _handle_next(events, run, running, timeout=_POLL_SECONDS):
                for worker in [w for w in running if processes[w].exitcode is not None]:
                    while _handle_next(events, run, running, timeout=_POLL_SECONDS):
                        pass  # read what the dead worker sent before it exited
                    if worker in running:  # it died without saying so (killed, out of memory, ...)
                        running.discard(worker)
                        _fail_unreported(
                            jobs, worker, run, f"worker process exited with code {processes[worker].exitcode}"
                        )
            if run.fatal is not None:
                stop.set()
    finally:
        stop.set()
        for process in processes.values():
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()
    if run.fatal is not None:
        error_type, message = run.fatal
        raise (ModelFileError if error_type == "ModelFileError" else ExtractError)(message)


def _handle_next(events, run: _Run, running: set[int], timeout: float) -> bool:
    """Handle one event from the queue; False when none came within ``timeout`` seconds."""
    try:
        event = events.get(timeout=timeout)
    except queue_module.Empty:
        return False
    if event[0] == "finished":
        running.discard(event[1])
    else:
        run.handle(event)
    return True


def _fail_unreported(jobs: list, worker: int, run: _Run, reason: str) -> None:
    reported = run.reported()
    for name in next(job for job in jobs if job.worker == worker).wavs:
        if Path(name).name not in reported:
            run.handle(("failed", Path(name).name, reason))
    run.log(f"worker {worker}: {reason}")


def extract_pitch(
    exp_dir: str | Path,
    method: str,
    *,
    workers: int = 1,
    devices: Sequence[str] = ("cpu",),
    rmvpe_path: str | Path | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> ExtractReport:
    """f0 for every ``1_16k_wavs/*.wav`` of the experiment ``exp_dir``.

    Writes ``2b-f0nsf/<name>.wav.npy`` (float32 Hz, ``len // 160`` frames) and
    ``2a_f0/<name>.wav.npy`` (int64, 1..255); files with both outputs are skipped.
    ``method`` is one of :data:`infer.f0.F0_METHODS`.  pm/harvest/dio run in
    ``workers`` processes (``devices`` unused); rmvpe/crepe/crepe-tiny/fcpe run
    one process per entry of ``devices`` (``workers`` unused).  ``rmvpe_path``
    defaults to ``assets/rmvpe/rmvpe.pt``.  ``progress(fraction, message)``,
    ``cancel()`` (checked between files) and ``log(line)`` are optional.
    """
    if method not in F0_METHODS:
        raise ValueError(f"Unknown f0 method {method!r}; choose one of {', '.join(F0_METHODS)}.")
    paths = ExperimentPaths(Path(exp_dir).absolute())
    wavs = _wav_files(paths)
    rmvpe = None
    if method == "rmvpe":
        rmvpe = Path(rmvpe_path) if rmvpe_path is not None else asset_path("rmvpe")
        if not rmvpe.is_file():
            raise ModelFileError(f"RMVPE weights not found at '{rmvpe}'. Download them with `{RMVPE_DOWNLOAD}`.")
    if method in NETWORK_F0_METHODS:
        targets = _resolve_devices(devices)
    else:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        targets = ["cpu"] * workers
    job_template = PitchJob(0, (), method, "cpu", str(paths.f0_hz), str(paths.f0_coarse), str(rmvpe) if rmvpe else None)
    todo = [wav for wav in wavs if not all(p.exists() for p in pitch_output_paths(job_template, wav))]
    paths.f0_hz.mkdir(exist_ok=True)
    paths.f0_coarse.mkdir(exist_ok=True)
    run = _Run(paths, len(wavs), len(wavs) - len(todo), f"f0 ({method})", progress, log)
    run.log(f"exp_dir: {paths.root}")
    run.log(f"todo-f0-{len(todo)} (of {len(wavs)}; method {method})" if todo else "no-f0-todo")
    run.report_progress()
    parts = _split(todo, len(targets))
    threads = worker_threads(len(parts)) if len(parts) > 1 else None
    jobs = [
        PitchJob(
            index,
            files,
            method,
            targets[index],
            job_template.hz_dir,
            job_template.coarse_dir,
            job_template.rmvpe_path,
            threads,
        )
        for index, files in enumerate(parts)
    ]
    cancelled = _execute(jobs, run_pitch_job, run, cancel)
    run.log("all-f0-cancelled" if cancelled else "all-f0-done")
    return run.report(cancelled)


def extract_features(
    exp_dir: str | Path,
    version: str,
    encoder_path: str | Path,
    *,
    devices: Sequence[str] = ("cpu",),
    half: bool | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> ExtractReport:
    """Content features for every ``1_16k_wavs/*.wav`` of ``exp_dir`` with the encoder at ``encoder_path``.

    Writes ``3_feature256/<name>.npy`` (v1, final_proj of layer 9) or
    ``3_feature768/<name>.npy`` (v2, layer 12): float32 (T, D) with
    T = (N - 400) // 320 + 1 for N samples.  Existing outputs are skipped;
    files whose features contain NaN are reported in ``failed`` and not saved.
    One worker per entry of ``devices``; ``half`` None means fp16 on CUDA GPUs
    that handle it well, fp32 elsewhere (CPU and MPS always run fp32).
    """
    if version not in FEATURE_DIMS:
        raise ValueError(f"Unknown model version {version!r}; use v1 or v2.")
    paths = ExperimentPaths(Path(exp_dir).absolute())
    wavs = _wav_files(paths)
    encoder = Path(encoder_path)
    if not encoder.exists():
        raise ModelFileError(f"Content encoder not found at '{encoder}'. Download it with `{HUBERT_DOWNLOAD}`.")
    targets = _resolve_devices(devices)
    out_dir = paths.features(version)
    job_template = FeatureJob(0, (), version, "cpu", False, str(encoder), str(out_dir))
    todo = [wav for wav in wavs if not feature_output_path(job_template, wav).exists()]
    out_dir.mkdir(exist_ok=True)
    run = _Run(paths, len(wavs), len(wavs) - len(todo), f"features ({version})", progress, log)
    run.log(f"exp_dir: {paths.root}")
    run.log(f"all-feature-{len(todo)} (of {len(wavs)}; {version})" if todo else "no-feature-todo")
    run.report_progress()
    parts = _split(todo, len(targets))
    threads = worker_threads(len(parts)) if len(parts) > 1 else None
    jobs = []
    for index, files in enumerate(parts):
        device = targets[index]
        use_half = default_half(torch.device(device)) if half is None else bool(half)
        use_half = use_half and not device.startswith(("cpu", "mps"))
        jobs.append(FeatureJob(index, files, version, device, use_half, str(encoder), str(out_dir), threads))
    cancelled = _execute(jobs, run_feature_job, run, cancel)
    run.log("all-feature-cancelled" if cancelled else "all-feature-done")
    return run.report(cancelled)
