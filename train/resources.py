"""How much of the machine a step may use: usable cores, available memory, worker counts.

Cores are those this process may run on (its CPU affinity, as set by a job
scheduler or ``taskset``), not every core of the machine.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from infer.audio import AudioFileError, audio_info

WORKER_BASE_BYTES = 150 * 2**20  # a spawned worker with numpy, scipy, PyAV and soxr loaded
MEMORY_FACTOR = 10  # float32-sized copies of the source at the model rate a worker holds at its peak (generous)


def usable_cores() -> int:
    """CPU cores this process may use (≥ 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def available_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable`` on Linux, free pages elsewhere), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def default_pitch_processes() -> int:
    """RVC's default for CPU pitch extraction: ceil(cores / 1.5)."""
    return max(1, math.ceil(usable_cores() / 1.5))


def worker_threads(processes: int) -> int:
    """Torch threads per worker process so that ``processes`` workers share the usable cores."""
    return max(1, usable_cores() // max(processes, 1))


def worker_bytes(seconds: float, sample_rate: int, source_rate: int = 48000, channels: int = 2) -> int:
    """Estimated peak memory of one worker preprocessing a source of ``seconds`` (bytes)."""
    decoded = source_rate * channels * 4 * 2  # the decoded source and its mono mix, float32
    return int(WORKER_BASE_BYTES + seconds * (decoded + sample_rate * 4 * MEMORY_FACTOR))


def largest_source_bytes(files: list[Path], sample_rate: int) -> int:
    """:func:`worker_bytes` of the longest of ``files`` (unreadable files are skipped: their worker reports them)."""
    largest = 0
    for path in files:
        try:
            info = audio_info(path)
        except AudioFileError:
            continue
        seconds = info.duration if info.duration is not None else path.stat().st_size / 16000
        largest = max(largest, worker_bytes(seconds, sample_rate, info.sample_rate, info.channels))
    return largest


def plan_workers(
    n_files: int, largest_bytes: int, *, cpus: int | None = None, available_bytes: int | None = None
) -> int:
    """Worker processes: at most one per core and per file, and all together within half the available memory."""
    limit = max(1, min(cpus or usable_cores(), n_files))
    if available_bytes is None:
        available_bytes = available_memory()
    if available_bytes is None or largest_bytes <= 0:
        return limit
    return max(1, min(limit, int(available_bytes * 0.5 // largest_bytes)))
