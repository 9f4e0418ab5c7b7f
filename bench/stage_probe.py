"""Peak resident memory and CPU time per conversion stage.

:class:`StageProbe` is an :data:`infer.pipeline.StageObserver`: pass it as
``StageTimes(observer=...)``.  A background thread reads the process RSS
from ``/proc/self/status`` every ``interval`` seconds (and the observer reads
it at every stage change) and charges each reading to the stage active at
that moment ("other" between stages).  Readings are 5 ms apart, so
allocations that live for less than that can be missed.  CPU time is the
process's (all threads) between stage changes; on a busy machine it shows
the work done better than wall time does.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

OUTSIDE = "other"
_STATUS = Path("/proc/self/status")


def rss_bytes(field: str = "VmRSS") -> int:
    """The process's resident set size (``VmRSS``) or its high-water mark (``VmHWM``) in bytes; 0 if unknown."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class StageProbe:
    """Per stage: peak RSS (bytes), largest rise over the RSS at stage entry, CPU seconds.

    Use as a context manager around the measured work.  ``peak``, ``rise`` and
    ``cpu`` accumulate over every time a stage runs; ``overall`` is the peak
    of all readings and ``cpu_total`` the CPU time inside the ``with`` block.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak: dict[str, int] = {}
        self.rise: dict[str, int] = {}
        self.cpu: dict[str, float] = {}
        self.overall = 0
        self.cpu_total = 0.0
        self._stage = OUTSIDE
        self._entry = rss_bytes()
        self._cpu_mark = self._cpu_start = time.process_time()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, stage: str, entering: bool) -> None:
        """The observer hook: ``stage`` starts (``entering``) or ends."""
        self._record(rss_bytes())  # close the previous span with a fresh reading
        now = time.process_time()
        with self._lock:
            self.cpu[self._stage] = self.cpu.get(self._stage, 0.0) + now - self._cpu_mark
            self._cpu_mark = now
            self._stage = stage if entering else OUTSIDE
            self._entry = rss_bytes()
        self._record(self._entry)

    def __enter__(self) -> StageProbe:
        self._stop.clear()
        self._cpu_mark = self._cpu_start = time.process_time()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._record(rss_bytes())
        now = time.process_time()
        self.cpu[self._stage] = self.cpu.get(self._stage, 0.0) + now - self._cpu_mark
        self.cpu_total = now - self._cpu_start

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._record(rss_bytes())

    def _record(self, rss: int) -> None:
        with self._lock:
            stage = self._stage
            self.peak[stage] = max(self.peak.get(stage, 0), rss)
            self.rise[stage] = max(self.rise.get(stage, 0), rss - self._entry)
            self.overall = max(self.overall, rss)
