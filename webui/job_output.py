"""Reading what a job writes: JSON progress lines on stdout and the experiment's ``metrics.jsonl``."""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProgressUpdate:
    """One ``{"progress": 0.25, "message": "epoch 5/20, step 80"}`` line; either key may be missing.

    ``stopped`` is the final line's ``"stopped": true`` (the step ended early on a stop request).
    """

    progress: float | None
    message: str | None
    stopped: bool = False


def parse_progress_line(line: str) -> ProgressUpdate | None:
    """The progress update in ``line``, or None when it is an ordinary log line.

    Only JSON objects with a numeric ``progress`` (clamped to 0..1) and/or a
    string ``message`` count; any other line, JSON or not, is log text.
    """
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    raw_progress, raw_message = data.get("progress"), data.get("message")
    progress = None
    if isinstance(raw_progress, (int, float)) and not isinstance(raw_progress, bool) and math.isfinite(raw_progress):
        progress = min(1.0, max(0.0, float(raw_progress)))
    message = raw_message if isinstance(raw_message, str) else None
    if progress is None and message is None:
        return None
    return ProgressUpdate(progress, message, data.get("stopped") is True)


class MetricsReader:
    """Incremental reader of a ``metrics.jsonl`` that another process appends to.

    :meth:`read` returns every complete record so far, reading only the new
    bytes on each call.  A half-written last line waits for the next call; a
    file that shrank or was replaced (a resumed run trims it) is read again from the start.
    Thread-safe.
    """

    def __init__(self, path: str | Path, max_records: int = 100_000) -> None:
        self.path = Path(path)
        self.max_records = max_records
        self._offset = 0
        self._inode: int | None = None
        self._records: list[dict] = []
        self._lock = threading.Lock()

    def read(self) -> list[dict]:
        with self._lock:
            try:
                stat = self.path.stat()
            except OSError:
                self._offset, self._records = 0, []
                return []
            size = stat.st_size
            if size < self._offset or stat.st_ino != self._inode:  # rewritten (resume trims it atomically)
                self._offset, self._records, self._inode = 0, [], stat.st_ino
            if size > self._offset:
                with open(self.path, "rb") as handle:
                    handle.seek(self._offset)
                    chunk = handle.read(size - self._offset)
                complete = chunk.rfind(b"\n") + 1
                self._offset += complete
                for raw in chunk[:complete].splitlines():
                    try:
                        record = json.loads(raw.decode("utf-8"))
                    except (ValueError, UnicodeDecodeError):
                        continue
                    if isinstance(record, dict):
                        self._records.append(record)
                del self._records[: max(0, len(self._records) - self.max_records)]
            return list(self._records)
