"""Training step 4: the FAISS retrieval index over an experiment's content features (spec §7.1).

Reads ``logs/<exp>/3_feature256|768/*.npy``, optionally reduces large sets to
k-means centres, and writes RVC's three files into the experiment folder:
``total_fea.npy``, ``trained_IVF{n}_Flat_nprobe_1_{exp}_{ver}.index`` (no vectors)
and ``added_IVF{n}_Flat_nprobe_1_{exp}_{ver}.index`` (the one inference uses),
plus, on request, a copy for ``assets/indices``.

Compared with RVC: the IVF list count is guarded for tiny data sets, bad feature
files are reported by name, every write is atomic and goes through bytes (so
non-ASCII paths work), the outside file is a hard link or a copy instead of a
relative symlink that dangled, and the result is read back before it is reported,
so a broken index never "appears" silently (FAQ Q2).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from infer.atomic import atomic_path
from infer.models.config import FEATURE_DIMS
from infer.retrieval import FeatureIndex, FeatureIndexError
from train.experiment import ExperimentError, ExperimentPaths

Progress = Callable[[float, str], None]
KMEANS_ITERATIONS = 25  # faiss' default; run in rounds so progress and cancel work in between
KMEANS_ROUND = 5


class IndexBuildError(ExperimentError):
    """The features cannot be turned into an index; the message names the file and says what to do."""


class IndexBuildCancelled(RuntimeError):
    """Raised when the caller's cancel check returns True; no ``added_`` file was written."""


@dataclass
class IndexReport:
    """What :func:`build_index` wrote.

    ``vectors`` rows of ``dim`` floats are in the index (k-means centres when
    ``kmeans``); ``linked`` is the copy outside the experiment (``None`` when not
    asked for or when it failed); ``notes`` lists everything unusual (dropped rows,
    a failed k-means or copy).
    """

    added: Path
    trained: Path
    total_features: Path
    vectors: int
    dim: int
    n_ivf: int
    kmeans: bool
    linked: Path | None
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """A short human-readable summary, one fact per line."""
        lines = [
            f"Index: {self.added}",
            f"{self.vectors} vectors of {self.dim} values, IVF{self.n_ivf}"
            + (" (k-means centres)" if self.kmeans else ""),
        ]
        if self.linked is not None:
            lines.append(f"Copy for inference: {self.linked}")
        return "\n".join(lines + self.notes)


def ivf_list_count(vectors: int) -> int:
    """RVC's ``min(int(16·√N), N // 39)``, kept between 1 and N (FAISS needs 1 ≤ lists ≤ training points)."""
    rule = min(int(16 * np.sqrt(vectors)), vectors // 39)
    return max(1, min(rule, vectors))


def index_file_name(prefix: str, n_ivf: int, exp: str, version: str) -> str:
    """``{prefix}_IVF{n}_Flat_nprobe_1_{exp}_{version}.index``; prefix ``added``, ``trained`` or the experiment."""
    return f"{prefix}_IVF{n_ivf}_Flat_nprobe_1_{exp}_{version}.index"


def build_index(
    exp_dir: str | os.PathLike[str],
    version: str,
    *,
    outside_dir: Path | None = None,
    kmeans_threshold: int = 200_000,
    kmeans_centers: int = 10_000,
    add_batch: int = 8192,
    seed: int | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> IndexReport:
    """Build the experiment's IVF-Flat (L2, nprobe 1) index from its ``(frames, D)`` float32 feature files.

    ``exp_dir`` is ``logs/<exp>``; ``version`` ``v1``/``v2`` picks ``3_feature256``/``3_feature768``.
    More than ``kmeans_threshold`` vectors are replaced by ``kmeans_centers`` k-means centres (a
    failed k-means is logged and the full set used, as RVC does).  ``seed`` makes the row shuffle and
    k-means reproducible; ``threads`` sets FAISS' OpenMP thread count (process-wide) for the call.
    ``progress(fraction, message)``, ``log(line)`` and ``cancel() -> bool`` are optional callbacks;
    cancelling raises :class:`IndexBuildCancelled`.  Bad input raises :class:`IndexBuildError`.
    """
    paths = ExperimentPaths(Path(exp_dir))
    if version not in FEATURE_DIMS:
        raise IndexBuildError(f"Unknown version {version!r} for experiment '{paths.root}'; use v1 or v2.")
    if kmeans_centers < 1 or add_batch < 1:
        raise ValueError("kmeans_centers and add_batch must be at least 1")
    step = _Steps(progress, cancel, log)
    previous_threads = faiss.omp_get_max_threads()
    if threads is not None:
        faiss.omp_set_num_threads(max(1, int(threads)))
    try:
        return _build(paths, version, outside_dir, kmeans_threshold, kmeans_centers, add_batch, seed, step)
    finally:
        faiss.omp_set_num_threads(previous_threads)


class _Steps:
    """The caller's callbacks, each optional."""

    def __init__(self, progress: Progress | None, cancel: Callable[[], bool] | None, log: Callable[[str], None] | None):
        self._progress, self._cancel, self._log = progress, cancel, log

    def log(self, line: str) -> None:
        if self._log is not None:
            self._log(line)

    def progress(self, fraction: float, message: str) -> None:
        if self._progress is not None:
            self._progress(min(max(fraction, 0.0), 1.0), message)

    def check_cancel(self) -> None:
        if self._cancel is not None and self._cancel():
            raise IndexBuildCancelled("Index building cancelled.")


def _build(
    paths: ExperimentPaths,
    version: str,
    outside_dir: Path | None,
    kmeans_threshold: int,
    kmeans_centers: int,
    add_batch: int,
    seed: int | None,
    step: _Steps,
) -> IndexReport:
    notes: list[str] = []
    big = _load_features(paths.features(version), step, notes)
    rng = np.random.default_rng(seed)
    rng.shuffle(big)  # in place, along the rows
    dim = big.shape[1]
    if dim != FEATURE_DIMS[version]:
        _note(
            step,
            notes,
            f"Note: the features are {dim}-d but {version} voices use {FEATURE_DIMS[version]}-d; "
            f"this index will not fit a {version} voice.",
        )
    used_kmeans = False
    if len(big) > kmeans_threshold:
        centres = _reduce_with_kmeans(big, kmeans_centers, int(rng.integers(2**31 - 1)), step, notes)
        if centres is not None:
            big, used_kmeans = centres, True
    with atomic_path(paths.root / "total_fea.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, big)

    count = len(big)
    n_ivf = ivf_list_count(count)
    exp = paths.name
    step.log(f"{big.shape},{n_ivf}")
    index = faiss.index_factory(dim, f"IVF{n_ivf},Flat")
    faiss.extract_index_ivf(index).nprobe = 1
    step.check_cancel()
    step.log("training")
    step.progress(0.6, "training")
    index.train(big)
    trained = _write_index(index, paths.root / index_file_name("trained", n_ivf, exp, version))

    step.log("adding")
    for start in range(0, count, add_batch):
        step.check_cancel()
        step.progress(0.75 + 0.2 * start / count, "adding")
        index.add(big[start : start + add_batch])
    added_name = index_file_name("added", n_ivf, exp, version)
    added = _write_index(index, paths.root / added_name)
    _verify(added, count, dim)
    step.log(f"成功构建索引 {added_name}")
    step.log(f"Built the index {added_name} ({count} vectors).")

    linked = None
    if outside_dir is not None:
        linked = _place_outside(added, Path(outside_dir) / index_file_name(exp, n_ivf, exp, version), step, notes)
    step.progress(1.0, "done")
    return IndexReport(added, trained, paths.root / "total_fea.npy", count, dim, n_ivf, used_kmeans, linked, notes)


def _load_features(folder: Path, step: _Steps, notes: list[str]) -> np.ndarray:
    """Every ``*.npy`` of ``folder`` in name order, concatenated to (N, D) float32, rows with NaN/inf dropped.

    Raises :class:`IndexBuildError` for a missing or empty folder, unreadable or
    non-2-D files, files of different widths, or when no finite row is left.
    """
    if not folder.is_dir():
        raise IndexBuildError(f"Feature folder '{folder}' does not exist: run feature extraction first (step 2b).")
    files = sorted(p for p in folder.iterdir() if p.suffix == ".npy" and p.is_file())
    if not files:
        raise IndexBuildError(f"Feature folder '{folder}' holds no .npy files: run feature extraction first (step 2b).")
    shapes = [_feature_shape(path) for path in files]
    widths: dict[int, Path] = {}
    for path, shape in zip(files, shapes):
        widths.setdefault(shape[1], path)
    if len(widths) > 1:
        listed = ", ".join(f"'{path.name}' is {width}-d" for width, path in sorted(widths.items()))
        raise IndexBuildError(
            f"Feature files in '{folder}' have different widths ({listed}). They come from different "
            "versions: delete the folder and run feature extraction again with one version."
        )
    big = np.empty((sum(shape[0] for shape in shapes), shapes[0][1]), np.float32)
    filled = 0
    bad_files = []
    for number, path in enumerate(files):
        step.check_cancel()
        step.progress(0.2 * number / len(files), f"loading {path.name}")
        rows = np.asarray(np.load(path, allow_pickle=False), dtype=np.float32)
        finite = np.isfinite(rows).all(axis=1)
        kept = int(finite.sum())
        big[filled : filled + kept] = rows if kept == len(rows) else rows[finite]
        filled += kept
        if kept < len(rows):
            bad_files.append(f"{path.name} ({len(rows) - kept})")
    if bad_files:
        _note(
            step,
            notes,
            f"Dropped {len(big) - filled} feature rows with NaN/inf values: {', '.join(bad_files)}. "
            "Re-extract those files if this is unexpected.",
        )
    if filled == 0:
        raise IndexBuildError(f"The feature files in '{folder}' hold no usable rows: run feature extraction again.")
    return big[:filled]


def _feature_shape(path: Path) -> tuple[int, int]:
    """The (rows, width) of a feature file, read from its header (mapped, not loaded)."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        shape, dtype = array.shape, array.dtype
        del array
    except (OSError, ValueError, EOFError) as error:
        raise IndexBuildError(
            f"Cannot read feature file '{path}' ({error}): delete it and run feature extraction again."
        ) from error
    if len(shape) != 2 or not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise IndexBuildError(
            f"Feature file '{path}' holds a {dtype} array of shape {shape}, not (frames, features) numbers: "
            "delete it and run feature extraction again."
        )
    return int(shape[0]), int(shape[1])


def _reduce_with_kmeans(big: np.ndarray, centers: int, seed: int, step: _Steps, notes: list[str]) -> np.ndarray | None:
    """(centers, D) float32 k-means centres of ``big``, or ``None`` (noted) when k-means is skipped or fails."""
    label = f"{centers // 1000}k" if centers % 1000 == 0 else str(centers)
    step.log(f"Trying doing kmeans {len(big)} shape to {label} centers.")
    if len(big) <= centers:
        _note(step, notes, f"Skipped k-means: {len(big)} vectors are not more than {centers} centres.")
        return None
    centroids = None
    for done in range(0, KMEANS_ITERATIONS, KMEANS_ROUND):
        step.check_cancel()
        step.progress(0.2 + 0.4 * done / KMEANS_ITERATIONS, "kmeans")
        try:
            kmeans = faiss.Kmeans(big.shape[1], centers, niter=KMEANS_ROUND, seed=seed, verbose=False)
            kmeans.train(big, init_centroids=centroids)
            centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
        except Exception as error:  # RVC carries on with all vectors after any k-means failure
            _note(
                step,
                notes,
                f"k-means failed ({type(error).__name__}: {error}); "
                f"building the index from all {len(big)} vectors instead.",
            )
            return None
    return centroids


def _write_index(index: faiss.Index, path: Path) -> Path:
    """Serialize to bytes and write atomically (faiss.write_index fails on non-ASCII paths on Windows)."""
    data = faiss.serialize_index(index)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
    return path


def _verify(path: Path, vectors: int, dim: int) -> None:
    """Read the written index back; raise :class:`IndexBuildError` unless it holds ``vectors`` × ``dim``."""
    try:
        loaded = FeatureIndex.load(path)
    except FeatureIndexError as error:
        raise IndexBuildError(f"The index just written cannot be read back: {error}") from error
    if (loaded.ntotal, loaded.dim) != (vectors, dim):
        raise IndexBuildError(
            f"Index '{path}' holds {loaded.ntotal} vectors of {loaded.dim} values instead of {vectors} of {dim}: "
            "build the index again."
        )


def _place_outside(added: Path, target: Path, step: _Steps, notes: list[str]) -> Path | None:
    """Hard-link (same filesystem) or copy ``added`` to ``target`` atomically; ``None`` (noted) on failure."""
    try:
        with atomic_path(target) as tmp:
            tmp.unlink()
            try:
                os.link(added, tmp)
            except OSError:
                shutil.copyfile(added, tmp)
        if target.stat().st_size != added.stat().st_size:
            raise OSError(f"'{target}' does not match '{added}'")
    except OSError as error:
        step.log(f"链接索引到外部-{target.parent}失败")
        _note(step, notes, f"Could not copy the index to '{target}' ({error}); use '{added}' directly.")
        return None
    step.log(f"链接索引到外部-{target.parent}")
    step.log(f"Copied the index to '{target}'.")
    return target


def _note(step: _Steps, notes: list[str], line: str) -> None:
    notes.append(line)
    step.log(line)
