"""A thread-safe cache of loaded models, passed to every conversion (no module globals).

One :class:`ModelCache` serves a whole process (the web UI, a batch run):
voices and indexes are kept by path (and reloaded when the file changes), the
content encoder and pitch networks are loaded once.  Several threads may
convert with different voices at the same time; loading happens once per key.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from infer.devices import default_half, gpu_memory_gb, resolve_device
from infer.f0 import PitchModels
from infer.pipeline import ChunkSizes

T = TypeVar("T")


class _LRU:
    """A small LRU map whose loads run once per key even when threads race."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Any, threading.Lock] = {}

    def get(self, key: Any, load: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            value = load()
            with self._lock:
                self._items[key] = value
                self._key_locks.pop(key, None)
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _file_key(path: str | Path) -> tuple[str, int, int]:
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return str(resolved), stat.st_mtime_ns, stat.st_size


class ModelCache:
    """Loaded models for conversions on one device.

    ``hubert_path``/``rmvpe_path`` locate the content encoder and RMVPE
    (``assets/...`` by default via :mod:`infer.assets`).  ``device`` is
    "auto", "cpu", "cuda", "cuda:N" or "mps"; ``half`` defaults to fp16 on
    CUDA GPUs that handle it well.
    """

    def __init__(
        self,
        *,
        hubert_path: str | Path | None = None,
        rmvpe_path: str | Path | None = None,
        device: str | torch.device | None = "auto",
        half: bool | None = None,
        max_voices: int = 4,
        max_indexes: int = 4,
    ) -> None:
        from infer.assets import asset_path

        self.device = resolve_device(device)
        self.half = default_half(self.device) if half is None else bool(half and self.device.type == "cuda")
        self.dtype = torch.float16 if self.half else torch.float32
        self.hubert_path = Path(hubert_path) if hubert_path else asset_path("hubert_base")
        self.rmvpe_path = Path(rmvpe_path) if rmvpe_path else asset_path("rmvpe")
        self.chunk_sizes = ChunkSizes.for_device(self.device, self.half, gpu_memory_gb(self.device))
        self._voices = _LRU(max_voices)
        self._indexes = _LRU(max_indexes)
        self._singletons = _LRU(8)

    def voice(self, path: str | Path):
        """The voice at ``path`` (an ``infer.voice.Voice``), loaded once per file version."""
        from infer.voice import load_voice

        return self._voices.get(_file_key(path), lambda: load_voice(path, device=self.device, dtype=self.dtype))

    def index(self, path: str | Path):
        """The feature index at ``path`` (an ``infer.retrieval.FeatureIndex``)."""
        from infer.retrieval import FeatureIndex

        return self._indexes.get(_file_key(path), lambda: FeatureIndex.load(path))

    def content_encoder(self):
        """The content encoder (``infer.content.ContentEncoder``) on this cache's device."""
        from infer.content import load_content_encoder

        return self._singletons.get(
            ("encoder", str(self.hubert_path)),
            lambda: load_content_encoder(self.hubert_path, device=self.device, dtype=self.dtype),
        )

    def pitch_models(self) -> PitchModels:
        """Pitch networks (RMVPE, CREPE, FCPE), each loaded on first use."""
        return self._singletons.get(
            ("pitch", str(self.rmvpe_path)),
            lambda: PitchModels(self.device, rmvpe_path=self.rmvpe_path, half=self.half),
        )

    def clear(self) -> None:
        """Drop every loaded model (the UI's "unload" button); frees GPU memory."""
        for cache in (self._voices, self._indexes, self._singletons):
            cache.clear()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
