"""Building the FAISS index from an experiment's features (training step 4, spec §7.1)."""

from __future__ import annotations

import os
from pathlib import Path

import faiss
import numpy as np
import pytest

from infer.index_pairing import find_index_for_voice, index_experiment_name, list_indexes
from infer.retrieval import FeatureIndex
from train.experiment import ExperimentError
from train.index import (
    IndexBuildCancelled,
    IndexBuildError,
    build_index,
    index_file_name,
    ivf_list_count,
)


def _features(rows: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)


def _experiment(root: Path, parts: dict[str, np.ndarray], name: str = "alice", version: str = "v2") -> Path:
    """``root/logs/<name>`` with ``3_feature256|768/<file>`` written from ``parts``."""
    exp_dir = root / "logs" / name
    folder = exp_dir / f"3_feature{256 if version == 'v1' else 768}"
    folder.mkdir(parents=True)
    for file_name, array in parts.items():
        np.save(folder / file_name, array)
    return exp_dir


def _split(feats: np.ndarray, pieces: int = 3) -> dict[str, np.ndarray]:
    return {f"0_{i}.npy": part for i, part in enumerate(np.array_split(feats, pieces))}


@pytest.mark.parametrize(
    ("vectors", "expected"),
    [(1, 1), (10, 1), (38, 1), (39, 1), (77, 1), (78, 2), (100, 2), (1000, 25), (10_000, 256), (30_000, 769)],
)
def test_ivf_list_count_follows_rvc_and_is_guarded(vectors, expected):
    assert ivf_list_count(vectors) == expected


def test_file_names_match_rvc():
    assert index_file_name("added", 25, "alice", "v2") == "added_IVF25_Flat_nprobe_1_alice_v2.index"
    assert index_file_name("alice", 25, "alice", "v1") == "alice_IVF25_Flat_nprobe_1_alice_v1.index"


@pytest.mark.parametrize("vectors", [1, 10, 38, 39, 100, 1000])
def test_tiny_and_small_datasets_give_a_usable_index(tmp_path, vectors):
    feats = _features(vectors)
    exp_dir = _experiment(tmp_path, _split(feats, min(3, vectors)))
    report = build_index(exp_dir, "v2", seed=0)

    n_ivf = ivf_list_count(vectors)
    assert report.n_ivf == n_ivf
    assert (report.vectors, report.dim, report.kmeans) == (vectors, 16, False)
    assert report.added == exp_dir / f"added_IVF{n_ivf}_Flat_nprobe_1_alice_v2.index"
    assert report.trained == exp_dir / f"trained_IVF{n_ivf}_Flat_nprobe_1_alice_v2.index"
    total = np.load(report.total_features)
    assert total.dtype == np.float32
    np.testing.assert_array_equal(np.sort(total, axis=0), np.sort(feats, axis=0))

    index = FeatureIndex.load(report.added)
    assert (index.ntotal, index.dim, index.nprobe) == (vectors, 16, 1)
    np.testing.assert_array_equal(index.vectors(), total)  # ids 0..N-1 in total_fea order
    assert faiss.extract_index_ivf(index._index).nlist == n_ivf
    assert not list(exp_dir.glob(".*.tmp"))


def test_trained_file_holds_no_vectors_and_loading_it_gives_the_added_file(tmp_path):
    exp_dir = _experiment(tmp_path, _split(_features(200)))
    report = build_index(exp_dir, "v2", seed=1)
    trained = faiss.deserialize_index(np.frombuffer(report.trained.read_bytes(), np.uint8))
    assert trained.ntotal == 0 and trained.is_trained
    loaded = FeatureIndex.load(report.trained)
    assert loaded.path == report.added and loaded.note
    assert index_experiment_name(report.added) == "alice"
    assert index_experiment_name(report.trained) == "alice"


def test_retrieval_on_the_built_index_finds_training_frames(tmp_path):
    feats = _features(500, seed=2)
    exp_dir = _experiment(tmp_path, _split(feats))
    index = FeatureIndex.load(build_index(exp_dir, "v2", seed=0).added)
    queries = feats[::50]
    np.testing.assert_array_equal(index.retrieve(queries), queries)  # exact hits take all the weight
    blended = index.blend(queries + 0.01, 0.5)
    assert blended.shape == queries.shape and np.isfinite(blended).all()


def test_features_are_read_in_name_order_and_shuffled_with_the_seed(tmp_path):
    parts = {"b.npy": _features(30, seed=1), "a.npy": _features(20, seed=2), "10.npy": _features(5, seed=3)}
    exp_dir = _experiment(tmp_path, parts)
    (exp_dir / "3_feature768" / "notes.txt").write_text("not a feature file")
    build_index(exp_dir, "v2", seed=7)
    expected = np.concatenate([parts["10.npy"], parts["a.npy"], parts["b.npy"]])
    np.random.default_rng(7).shuffle(expected)
    np.testing.assert_array_equal(np.load(exp_dir / "total_fea.npy"), expected)


def test_same_seed_same_files_other_seed_other_order(tmp_path):
    feats = _features(300, seed=4)
    reports = [
        build_index(_experiment(tmp_path / str(i), _split(feats)), "v2", seed=s) for i, s in enumerate((5, 5, 6))
    ]
    first, again, other = (np.load(r.total_features) for r in reports)
    np.testing.assert_array_equal(first, again)
    assert reports[0].added.read_bytes() == reports[1].added.read_bytes()
    assert not np.array_equal(first, other)


def test_log_and_progress_follow_rvc_steps(tmp_path):
    exp_dir = _experiment(tmp_path, _split(_features(1000)))
    lines, fractions = [], []
    report = build_index(exp_dir, "v2", log=lines.append, progress=lambda f, _m: fractions.append(f), add_batch=300)
    name = report.added.name
    for expected in ("(1000, 16),25", "training", "adding", f"成功构建索引 {name}"):
        assert expected in lines
    assert lines.index("(1000, 16),25") < lines.index("training") < lines.index("adding")
    assert any(line.startswith("Built the index") for line in lines)
    assert any("16-d but v2 voices use 768-d" in line for line in lines)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and min(fractions) >= 0.0
    assert str(report.added) in report.text() and "1000 vectors" in report.text()


def test_v1_features_go_to_3_feature256_without_a_width_note(tmp_path):
    exp_dir = _experiment(tmp_path, _split(_features(60, dim=256)), version="v1")
    report = build_index(exp_dir, "v1", seed=0)
    assert report.added.name == "added_IVF1_Flat_nprobe_1_alice_v1.index"
    assert report.dim == 256 and report.notes == []


def _blobs(rows: int, blobs: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((blobs, dim)) * 10
    return (centres[rng.integers(blobs, size=rows)] + rng.standard_normal((rows, dim))).astype(np.float32)


def _mean_nearest_distance(points: np.ndarray, centres: np.ndarray) -> float:
    flat = faiss.IndexFlatL2(points.shape[1])
    flat.add(centres)
    return float(flat.search(points, 1)[0].mean())


def test_large_sets_are_reduced_to_kmeans_centres(tmp_path):
    feats = _blobs(2500, 10)
    lines = []
    report = build_index(
        _experiment(tmp_path / "a", _split(feats)),
        "v2",
        kmeans_threshold=2000,
        kmeans_centers=100,
        seed=0,
        log=lines.append,
    )
    assert report.kmeans and report.vectors == 100 and report.n_ivf == ivf_list_count(100) == 2
    assert "Trying doing kmeans 2500 shape to 100 centers." in lines
    centres = np.load(report.total_features)
    assert centres.shape == (100, 16) and centres.dtype == np.float32
    assert FeatureIndex.load(report.added).ntotal == 100
    # k-means centres fit the data clearly better than 100 of its rows (about 12 vs 18 here)
    random_rows = feats[np.random.default_rng(1).choice(len(feats), 100, replace=False)]
    assert _mean_nearest_distance(feats, centres) < 0.8 * _mean_nearest_distance(feats, random_rows)
    again = build_index(
        _experiment(tmp_path / "b", _split(feats)), "v2", kmeans_threshold=2000, kmeans_centers=100, seed=0
    )
    np.testing.assert_array_equal(np.load(again.total_features), centres)


def test_kmeans_at_the_threshold_is_not_used(tmp_path):
    exp_dir = _experiment(tmp_path, _split(_features(2000)))
    report = build_index(exp_dir, "v2", kmeans_threshold=2000, kmeans_centers=100)
    assert not report.kmeans and report.vectors == 2000


def test_failed_kmeans_falls_back_to_all_vectors_and_says_so(tmp_path, monkeypatch):
    class BrokenKmeans:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("out of memory")

    monkeypatch.setattr(faiss, "Kmeans", BrokenKmeans)
    exp_dir = _experiment(tmp_path, _split(_features(2500)))
    lines = []
    report = build_index(exp_dir, "v2", kmeans_threshold=2000, kmeans_centers=100, log=lines.append)
    assert not report.kmeans and report.vectors == 2500 and report.n_ivf == ivf_list_count(2500)
    assert any("k-means failed" in note and "out of memory" in note for note in report.notes)
    assert any("k-means failed" in line for line in lines)
    assert "k-means failed" in report.text()


def test_kmeans_is_skipped_when_there_are_fewer_vectors_than_centres(tmp_path):
    exp_dir = _experiment(tmp_path, _split(_features(50)))
    report = build_index(exp_dir, "v2", kmeans_threshold=10, kmeans_centers=100)
    assert not report.kmeans and report.vectors == 50
    assert any("Skipped k-means" in note for note in report.notes)


def test_outside_copy_is_a_real_file_paired_with_the_experiment(tmp_path):
    exp_dir = _experiment(tmp_path, _split(_features(100)), name="alice")
    outside = tmp_path / "assets" / "indices"
    lines = []
    report = build_index(exp_dir, "v2", outside_dir=outside, log=lines.append)
    assert report.linked == outside / "alice_IVF2_Flat_nprobe_1_alice_v2.index"
    assert report.linked.is_file() and not report.linked.is_symlink()
    assert report.linked.read_bytes() == report.added.read_bytes()
    assert index_experiment_name(report.linked) == "alice"
    assert FeatureIndex.load(report.linked).ntotal == 100
    assert f"链接索引到外部-{outside}" in lines
    assert list_indexes(tmp_path / "logs", outside) == [report.added]  # the hard link is listed once
    voice = tmp_path / "weights" / "alice.pth"
    assert find_index_for_voice(voice, [outside]) == report.linked
    again = build_index(exp_dir, "v2", outside_dir=outside)  # an existing copy is replaced
    assert again.linked == report.linked and report.linked.read_bytes() == again.added.read_bytes()


def test_outside_copy_falls_back_to_copying_when_links_fail(tmp_path, monkeypatch):
    def no_links(*_args):
        raise OSError("cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    exp_dir = _experiment(tmp_path, _split(_features(100)))
    report = build_index(exp_dir, "v2", outside_dir=tmp_path / "indices")
    assert report.linked is not None and report.linked.read_bytes() == report.added.read_bytes()
    assert not os.path.samefile(report.linked, report.added)


def test_outside_copy_failure_is_reported(tmp_path):
    exp_dir = _experiment(tmp_path, _split(_features(100)))
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    lines = []
    report = build_index(exp_dir, "v2", outside_dir=blocker, log=lines.append)
    assert report.linked is None and report.added.is_file()
    assert f"链接索引到外部-{blocker}失败" in lines
    assert any("Could not copy the index" in note for note in report.notes)


def test_non_ascii_experiment_path(tmp_path):
    name = "歌手 é_1"
    exp_dir = _experiment(tmp_path / "データ", _split(_features(120)), name=name)
    report = build_index(exp_dir, "v2", outside_dir=tmp_path / "データ" / "indices")
    assert report.added.name == f"added_IVF3_Flat_nprobe_1_{name}_v2.index"
    assert index_experiment_name(report.added) == name == index_experiment_name(report.linked)
    assert FeatureIndex.load(report.added).ntotal == 120


def test_missing_and_empty_feature_folders_say_to_extract_first(tmp_path):
    exp_dir = tmp_path / "logs" / "alice"
    exp_dir.mkdir(parents=True)
    with pytest.raises(IndexBuildError, match="does not exist: run feature extraction first") as missing:
        build_index(exp_dir, "v2")
    assert "3_feature768" in str(missing.value)
    (exp_dir / "3_feature768").mkdir()
    with pytest.raises(IndexBuildError, match="holds no .npy files: run feature extraction first"):
        build_index(exp_dir, "v2")
    (exp_dir / "3_feature768" / "readme.txt").write_text("x")
    with pytest.raises(IndexBuildError, match="no .npy files"):
        build_index(exp_dir, "v2")
    assert issubclass(IndexBuildError, ExperimentError) and issubclass(IndexBuildError, ValueError)


def test_unknown_version_is_refused(tmp_path):
    with pytest.raises(IndexBuildError, match="use v1 or v2"):
        build_index(_experiment(tmp_path, _split(_features(10))), "v3")


def test_mixed_widths_name_the_files(tmp_path):
    exp_dir = _experiment(tmp_path, {"a.npy": _features(10, 16), "b.npy": _features(10, 16), "c.npy": _features(5, 8)})
    with pytest.raises(IndexBuildError, match="different widths") as error:
        build_index(exp_dir, "v2")
    assert "'a.npy' is 16-d" in str(error.value) and "'c.npy' is 8-d" in str(error.value)


@pytest.mark.parametrize(
    ("array", "message"),
    [(np.zeros(16, np.float32), "shape \\(16,\\)"), (np.array([{"a": 1}], dtype=object), "Cannot read")],
)
def test_bad_feature_files_are_named(tmp_path, array, message):
    exp_dir = _experiment(tmp_path, {"0_0.npy": _features(10)})
    np.save(exp_dir / "3_feature768" / "0_1.npy", array, allow_pickle=True)
    with pytest.raises(IndexBuildError, match=message) as error:
        build_index(exp_dir, "v2")
    assert "0_1.npy" in str(error.value)


def test_rows_with_nan_are_dropped_and_reported(tmp_path):
    bad = _features(20, seed=1)
    bad[[3, 7], 5] = np.nan
    bad[11, 0] = np.inf
    good = _features(30, seed=2)
    exp_dir = _experiment(tmp_path, {"a.npy": good, "b.npy": bad})
    lines = []
    report = build_index(exp_dir, "v2", seed=0, log=lines.append)
    assert report.vectors == 47
    total = np.load(report.total_features)
    assert np.isfinite(total).all() and len(total) == 47
    assert any("Dropped 3 feature rows" in note and "b.npy (3)" in note for note in report.notes)
    assert any("Dropped 3" in line for line in lines)


def test_all_nan_features_are_refused(tmp_path):
    exp_dir = _experiment(tmp_path, {"a.npy": np.full((5, 16), np.nan, np.float32)})
    with pytest.raises(IndexBuildError, match="no usable rows"):
        build_index(exp_dir, "v2")


def test_cancel_while_adding_writes_no_added_file(tmp_path):
    exp_dir = _experiment(tmp_path, _split(_features(1000)))
    seen: list[str] = []
    cancel_when_adding = lambda: "adding" in seen  # noqa: E731
    with pytest.raises(IndexBuildCancelled):
        build_index(exp_dir, "v2", add_batch=100, log=seen.append, cancel=cancel_when_adding)
    assert not list(exp_dir.glob("added_*.index"))
    assert list(exp_dir.glob("trained_*.index"))


def test_cancel_at_once_writes_nothing(tmp_path):
    exp_dir = _experiment(tmp_path, _split(_features(100)))
    with pytest.raises(IndexBuildCancelled):
        build_index(exp_dir, "v2", cancel=lambda: True)
    assert sorted(p.name for p in exp_dir.iterdir()) == ["3_feature768"]


def test_thread_setting_is_restored(tmp_path):
    before = faiss.omp_get_max_threads()
    build_index(_experiment(tmp_path, _split(_features(100))), "v2", threads=1)
    assert faiss.omp_get_max_threads() == before
