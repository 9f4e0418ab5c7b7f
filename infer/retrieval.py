"""Feature retrieval with RVC's FAISS ``.index`` files, and pairing an index with a voice.

An RVC index is a FAISS ``IndexIVFFlat`` (L2, nprobe 1 stored in the file) over the
training set's content features: 256-d for v1 voices, 768-d for v2, one row per
50 Hz frame, ids 0..N-1 in insertion order.  At conversion time each content frame
is replaced, in part, by a distance-weighted mean of its 8 nearest training frames
(:meth:`FeatureIndex.blend`).

Compared with RVC this module fixes: exact hits dividing by zero, ``-1`` ids (fewer
hits than ``k``) pulling in the last vector, the silent ``trained_`` file, and the
substring match that paired model "a" with any index path containing an "a".
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import faiss
import numpy as np

_FAISS_REASON = re.compile(r"index_read\.cpp:\d+: (?:Error: )?(.*)", re.S)
_GATHER_ROWS = 2048  # rows per gather chunk: bounds the (rows, k, D) temporary to ~50 MB at D = 768


class FeatureIndexError(ValueError):
    """An index file is missing, unreadable, empty or does not fit the voice.

    The message names the file and says what to do.
    """


class FeatureIndex:
    """A loaded FAISS index plus its vector table, safe to share between threads.

    ``dim`` is the feature size (256 for v1, 768 for v2), ``ntotal`` the number of
    stored vectors, ``nprobe`` the IVF probe count stored in the file (``None`` for
    non-IVF indexes; RVC writes 1 and it is never changed here), and ``note`` says
    when a different file than the one asked for was loaded.
    """

    def __init__(self, index: faiss.Index, path: Path, note: str | None = None) -> None:
        self.path = Path(path)
        self.note = note
        self.dim = int(index.d)
        self.ntotal = int(index.ntotal)
        self._index = index
        self._vectors: np.ndarray | None = None
        self._lock = threading.Lock()
        try:
            self.nprobe: int | None = int(faiss.extract_index_ivf(index).nprobe)
        except (RuntimeError, TypeError):
            self.nprobe = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureIndex:
        """Read an RVC ``.index`` file (any FAISS index with the L2 metric).

        A ``trained_IVF…`` file holds no vectors: the ``added_IVF…`` file beside it
        is loaded instead and ``note`` says so.  Raises :class:`FeatureIndexError`
        for missing, empty, non-FAISS or vector-less files.
        """
        path = Path(path)
        note = None
        if path.name.startswith("trained_"):
            added = path.with_name("added_" + path.name[len("trained_") :])
            if added.is_file():
                note = f"'{path.name}' is the training-only index without vectors; loaded '{added.name}' instead"
                path = added
        index = _read_faiss_index(path)
        if index.ntotal == 0:
            if path.name.startswith("trained_"):
                raise FeatureIndexError(
                    f"Index '{path}' is the training-only 'trained_' file and holds no vectors. "
                    "Use the 'added_' index file from the same folder, or rebuild the index "
                    "(Train tab, 'Train feature index')."
                )
            raise FeatureIndexError(f"Index '{path}' holds no vectors. Rebuild it (Train tab, 'Train feature index').")
        if index.metric_type != faiss.METRIC_L2:
            raise FeatureIndexError(
                f"Index '{path}' does not use the L2 metric that RVC retrieval needs. "
                "Rebuild it with 'Train feature index'."
            )
        return cls(index, path, note)

    def __repr__(self) -> str:
        return f"FeatureIndex(path='{self.path}', dim={self.dim}, ntotal={self.ntotal}, nprobe={self.nprobe})"

    def vectors(self) -> np.ndarray:
        """All stored vectors, (ntotal, dim) float32, row i = id i; read-only, computed once and kept."""
        with self._lock:
            if self._vectors is None:
                table = np.ascontiguousarray(self._index.reconstruct_n(0, self.ntotal), dtype=np.float32)
                table.flags.writeable = False
                self._vectors = table
            return self._vectors

    def search(self, queries: np.ndarray, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest stored vectors of each query row.

        ``queries``: (T, dim) float array (cast to float32).  Returns squared L2
        distances (T, k) float32 and ids (T, k) int64, nearest first; missing hits
        have id -1.
        """
        queries = self._as_queries(queries)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if len(queries) == 0:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        distances, ids = self._index.search(queries, k)
        return distances, ids

    def retrieve(self, queries: np.ndarray, k: int = 8) -> np.ndarray:
        """RVC's retrieved features: per row, sum_j w_j * vectors[id_j] with w = (1/d)^2 normalised.

        ``queries``: (T, dim) float32.  Returns (T, dim) float32.  An exact hit
        (d == 0) takes all the weight (shared between equal exact hits), ids of -1
        are ignored, and a row without any hit returns the query itself.
        """
        queries = self._as_queries(queries)
        distances, ids = self.search(queries, k)
        table = self.vectors()
        out = np.empty_like(queries)
        for start in range(0, len(queries), _GATHER_ROWS):
            rows = slice(start, start + _GATHER_ROWS)
            weight = _rvc_weights(distances[rows], ids[rows])
            picked = table[np.where(ids[rows] >= 0, ids[rows], 0)]
            out[rows] = np.sum(picked * np.expand_dims(weight, axis=2), axis=1)
        no_hit = ~(ids >= 0).any(axis=1)
        out[no_hit] = queries[no_hit]
        return out

    def blend(self, feats: np.ndarray, rate: float, k: int = 8) -> np.ndarray:
        """``rate * retrieve(feats) + (1 - rate) * feats`` (RVC's "index rate").

        ``feats``: (T, dim) content features at 50 frames/s, float16/32/64; the
        arithmetic is float32 and the result has the input dtype.  ``rate`` in
        [0, 1]; rate 0 returns ``feats`` itself without searching.
        """
        rate = float(rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"index rate must be between 0 and 1, got {rate}")
        if rate == 0.0:
            return feats
        feats32 = self._as_queries(feats)
        retrieved = self.retrieve(feats32, k)
        mixed = retrieved * np.float32(rate) + np.float32(1.0 - rate) * feats32
        return mixed.astype(np.asarray(feats).dtype, copy=False)

    def check_dim(self, feature_dim: int, voice_name: str = "") -> None:
        """Raise :class:`FeatureIndexError` unless the index holds ``feature_dim``-d features."""
        if int(feature_dim) == self.dim:
            return
        voice = f"voice '{voice_name}'" if voice_name else "the voice"
        raise FeatureIndexError(
            f"Index '{self.path}' holds {self.dim}-d features but {voice} uses {int(feature_dim)}-d "
            "(v1 = 256, v2 = 768): pick the index trained for this voice."
        )

    def _as_queries(self, queries: np.ndarray) -> np.ndarray:
        array = np.asarray(queries)
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise FeatureIndexError(
                f"Index '{self.path}' holds {self.dim}-d features but got an array of shape {array.shape}; "
                f"pass (frames, {self.dim}) features."
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise FeatureIndexError(f"Features for index '{self.path}' must be floats, got {array.dtype}.")
        return np.ascontiguousarray(array, dtype=np.float32)


def _rvc_weights(distances: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Normalised (1/d)^2 weights (T, k) float32, computed like RVC's numpy code.

    Rows where that formula breaks down (an exact hit d <= 0, 1/d^2 overflowing
    float32, or no hit at all) are redone safely; other rows are bit-identical to RVC.
    """
    valid = ids >= 0
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        weight = np.where(valid, np.square(1 / distances), np.float32(0))
        total = weight.sum(axis=1, keepdims=True)
        broken = (valid & (distances <= 0)).any(axis=1) | ~np.isfinite(total[:, 0]) | (total[:, 0] <= 0)
        weight /= np.where(broken[:, None], np.float32(1), total)
    for row in np.flatnonzero(broken):
        weight[row] = _safe_row_weights(distances[row], valid[row])
    return weight


def _safe_row_weights(distances: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """One row's weights when RVC's formula gives inf/NaN: exact hits share the weight,
    else (d_min/d)^2 in float64, which is the same normalised weighting without overflow."""
    weight = np.zeros(distances.shape, np.float64)
    if not valid.any():
        return weight.astype(np.float32)
    d = distances.astype(np.float64)
    exact = valid & (d <= 0)
    if exact.any():
        weight[exact] = 1.0
    else:
        weight[valid] = np.square(d[valid].min() / d[valid])
    return (weight / weight.sum()).astype(np.float32)


def _read_faiss_index(path: Path) -> faiss.Index:
    """Deserialize from bytes (faiss.read_index fails on non-ASCII paths on Windows)."""
    if not path.exists():
        raise FeatureIndexError(
            f"Index file '{path}' does not exist. Pick an existing .index file or rebuild the index."
        )
    if not path.is_file():
        raise FeatureIndexError(f"Index path '{path}' is a folder, not a file. Pick the .index file inside it.")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise FeatureIndexError(f"Could not read index file '{path}': {error}.") from error
    if not data:
        raise FeatureIndexError(f"Index file '{path}' is empty. Rebuild the index (Train tab, 'Train feature index').")
    if data.startswith(b"version https://git-lfs"):
        raise FeatureIndexError(f"'{path}' is a Git LFS pointer, not the index itself. Download the real file.")
    if data.startswith(b"PK"):
        raise FeatureIndexError(
            f"'{path}' looks like a model file (.pth/zip), not a FAISS index. Pick the .index file."
        )
    try:
        return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except (RuntimeError, MemoryError, ValueError) as error:
        match = _FAISS_REASON.search(str(error))
        reason = (match.group(1) if match else str(error)).strip().splitlines()[0][:160]
        raise FeatureIndexError(
            f"'{path}' is not a readable FAISS index ({reason}). It may be damaged or another kind of file: "
            "pick the added_….index file or rebuild the index."
        ) from error
