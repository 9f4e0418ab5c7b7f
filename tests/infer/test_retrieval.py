"""FeatureIndex (RVC's FAISS retrieval) and the index <-> voice pairing rules."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch

from infer.index_pairing import find_index_for_voice, index_experiment_name, is_index_file, list_indexes
from infer.retrieval import FeatureIndex, FeatureIndexError


def _features(n, dim, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _write(index, path: Path) -> Path:
    """Write through bytes so that non-ASCII paths work everywhere."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(faiss.serialize_index(index).tobytes())
    return path


def build_rvc_index(folder: Path, exp: str, feats: np.ndarray, n_ivf: int, version: str = "v2", batch: int = 64):
    """Build an index the way RVC's "Train feature index" does; returns (trained path, added path)."""
    index = faiss.index_factory(feats.shape[1], f"IVF{n_ivf},Flat")
    faiss.extract_index_ivf(index).nprobe = 1
    index.train(feats)
    stem = f"IVF{n_ivf}_Flat_nprobe_1_{exp}_{version}.index"
    trained = _write(index, folder / f"trained_{stem}")
    for start in range(0, len(feats), batch):
        index.add(feats[start : start + batch])
    return trained, _write(index, folder / f"added_{stem}")


def rvc_retrieve(index_path: Path, queries: np.ndarray, k: int = 8) -> np.ndarray:
    """RVC's pipeline code, transcribed directly (faiss.read_index, reconstruct_n, (1/d)^2 weights)."""
    index = faiss.read_index(str(index_path))
    big_npy = index.reconstruct_n(0, index.ntotal)
    score, ix = index.search(queries, k=k)
    weight = np.square(1 / score)
    weight /= weight.sum(axis=1, keepdims=True)
    return np.sum(big_npy[ix] * np.expand_dims(weight, axis=2), axis=1)


@pytest.fixture(scope="module")
def rvc_index(tmp_path_factory):
    """An 8-d RVC index over 400 vectors (IVF8) plus the data added to it."""
    feats = _features(400, 8, seed=1)
    trained, added = build_rvc_index(tmp_path_factory.mktemp("logs") / "alice", "alice", feats, n_ivf=8)
    return added, feats


def test_load_reads_an_rvc_index(rvc_index):
    added, feats = rvc_index
    index = FeatureIndex.load(str(added))
    assert (index.path, index.dim, index.ntotal, index.nprobe, index.note) == (added, 8, 400, 1, None)
    assert "ntotal=400" in repr(index)


def test_load_non_ascii_path_with_spaces_and_brackets(tmp_path):
    feats = _features(200, 8, seed=2)
    _, added = build_rvc_index(tmp_path / "my voices [β] ü" / "日本 語 (1)", "ünï [x]", feats, n_ivf=4)
    index = FeatureIndex.load(added)
    assert index.ntotal == 200 and index.path == added
    np.testing.assert_array_equal(index.vectors(), feats)


def test_vectors_follow_insertion_order_and_are_cached(rvc_index):
    added, feats = rvc_index
    index = FeatureIndex.load(added)
    table = index.vectors()
    assert table.dtype == np.float32 and table.shape == (400, 8)
    np.testing.assert_array_equal(table, feats)
    assert index.vectors() is table


def test_search_matches_brute_force_on_flat_index(tmp_path):
    stored, queries = _features(300, 16, seed=3), _features(25, 16, seed=4)
    flat = faiss.index_factory(16, "Flat")
    flat.add(stored)
    index = FeatureIndex.load(_write(flat, tmp_path / "flat.index"))
    assert index.nprobe is None
    distances, ids = index.search(queries, k=8)
    brute = ((queries[:, None, :].astype(np.float64) - stored[None, :, :]) ** 2).sum(-1)
    expected_ids = np.argsort(brute, axis=1)[:, :8]
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(distances, np.take_along_axis(brute, expected_ids, axis=1), rtol=1e-4, atol=1e-4)
    assert distances.dtype == np.float32 and ids.dtype == np.int64


def test_retrieve_is_bit_identical_to_rvc_without_exact_hits(rvc_index):
    added, _ = rvc_index
    queries = _features(3000, 8, seed=5)  # more rows than one gather chunk
    got = FeatureIndex.load(added).retrieve(queries)
    expected = rvc_retrieve(added, queries)
    assert got.dtype == np.float32 and got.shape == queries.shape
    np.testing.assert_array_equal(got, expected)


def test_exact_hit_takes_all_the_weight(rvc_index):
    added, feats = rvc_index
    queries = np.concatenate([feats[[7, 123]], _features(5, 8, seed=6)])
    index = FeatureIndex.load(added)
    got = index.retrieve(queries)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got[:2], feats[[7, 123]])
    np.testing.assert_array_equal(got[2:], rvc_retrieve(added, queries[2:]))
    with np.errstate(divide="ignore", invalid="ignore"):
        assert np.isnan(rvc_retrieve(added, queries[:2])).all(axis=1).all()  # the RVC bug we fix


def test_duplicate_exact_hits_share_the_weight(tmp_path):
    stored = _features(50, 8, seed=7)
    stored[10] = stored[20]
    flat = faiss.index_factory(8, "Flat")
    flat.add(stored)
    index = FeatureIndex.load(_write(flat, tmp_path / "dup.index"))
    np.testing.assert_array_equal(index.retrieve(stored[[20]]), stored[[20]])


def test_missing_hits_are_ignored(tmp_path):
    stored, queries = _features(5, 8, seed=8), _features(4, 8, seed=9)
    flat = faiss.index_factory(8, "Flat")
    flat.add(stored)
    index = FeatureIndex.load(_write(flat, tmp_path / "five.index"))
    distances, ids = index.search(queries, k=8)
    assert (ids[:, 5:] == -1).all() and (ids[:, :5] >= 0).all()
    weight = np.square(1 / distances[:, :5])
    weight /= weight.sum(axis=1, keepdims=True)
    expected = np.sum(stored[ids[:, :5]] * weight[:, :, None], axis=1)
    got = index.retrieve(queries, k=8)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    # RVC gets the same here only because 1/FLT_MAX^2 underflows to a zero weight for the -1 ids
    np.testing.assert_array_equal(got, rvc_retrieve(tmp_path / "five.index", queries))


def test_row_without_hits_keeps_the_query(tmp_path):
    # Two clusters train two IVF lists; only cluster A is added, so a query near B probes an empty list.
    rng = np.random.default_rng(10)
    cluster_a = (rng.standard_normal((100, 8)) * 0.1 + 5).astype(np.float32)
    cluster_b = (rng.standard_normal((100, 8)) * 0.1 - 5).astype(np.float32)
    ivf = faiss.index_factory(8, "IVF2,Flat")
    ivf.train(np.concatenate([cluster_a, cluster_b]))
    ivf.add(cluster_a)
    index = FeatureIndex.load(_write(ivf, tmp_path / "half.index"))
    queries = np.stack([cluster_b[0] + 0.01, cluster_a[3]])
    _, ids = index.search(queries)
    assert (ids[0] == -1).all() and (ids[1] >= 0).all()
    got = index.retrieve(queries)
    np.testing.assert_array_equal(got[0], queries[0])
    np.testing.assert_array_equal(got[1], cluster_a[3])
    with np.errstate(invalid="ignore"):
        assert np.isnan(rvc_retrieve(tmp_path / "half.index", queries[:1])).all()  # the RVC bug we fix


def test_overflowing_weights_fall_back_to_scaled_weights(tmp_path):
    stored = np.zeros((3, 8), np.float32)
    stored[1, 0], stored[2, 0] = 1.0, 2.0
    flat = faiss.index_factory(8, "Flat")
    flat.add(stored)
    index = FeatureIndex.load(_write(flat, tmp_path / "tiny.index"))
    query = np.zeros((1, 8), np.float32)
    query[0, 0] = 1e-10  # d = 1e-20 to vector 0: (1/d)^2 overflows float32
    got = index.retrieve(query, k=3)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, stored[[0]], atol=1e-6)


def test_blend_rates(rvc_index, monkeypatch):
    added, _ = rvc_index
    index = FeatureIndex.load(added)
    feats = _features(60, 8, seed=11)
    retrieved = index.retrieve(feats)
    np.testing.assert_array_equal(index.blend(feats, 1.0), retrieved)
    for rate in (0.5, 0.75):
        rvc = torch.from_numpy(retrieved).unsqueeze(0) * rate + (1 - rate) * torch.from_numpy(feats).unsqueeze(0)
        np.testing.assert_array_equal(index.blend(feats, rate), rvc[0].numpy())
    monkeypatch.setattr(FeatureIndex, "search", lambda *a, **k: pytest.fail("rate 0 must not search"))
    assert index.blend(feats, 0.0) is feats
    with pytest.raises(ValueError, match="between 0 and 1"):
        index.blend(feats, 1.5)


def test_blend_float16_computes_in_float32(rvc_index):
    added, _ = rvc_index
    index = FeatureIndex.load(added)
    feats16 = _features(40, 8, seed=12).astype(np.float16)
    got = index.blend(feats16, 0.6)
    assert got.dtype == np.float16 and got.shape == feats16.shape
    np.testing.assert_array_equal(got, index.blend(feats16.astype(np.float32), 0.6).astype(np.float16))


def test_wrong_query_shape_is_a_clear_error(rvc_index):
    index = FeatureIndex.load(rvc_index[0])
    with pytest.raises(FeatureIndexError, match=r"holds 8-d features.*\(1, 10, 8\)"):
        index.retrieve(np.zeros((1, 10, 8), np.float32))
    with pytest.raises(FeatureIndexError, match="holds 8-d"):
        index.search(np.zeros((10, 16), np.float32))


def test_trained_file_loads_the_added_file_beside_it(tmp_path):
    feats = _features(200, 8, seed=13)
    trained, added = build_rvc_index(tmp_path / "bob", "bob", feats, n_ivf=4)
    index = FeatureIndex.load(trained)
    assert index.path == added and index.ntotal == 200
    assert trained.name in index.note and added.name in index.note
    added.unlink()
    with pytest.raises(FeatureIndexError, match=r"trained_IVF4.*no vectors.*'added_' index") as error:
        FeatureIndex.load(trained)
    assert str(trained) in str(error.value)


def test_empty_index_is_refused(tmp_path):
    path = _write(faiss.index_factory(8, "Flat"), tmp_path / "nothing.index")
    with pytest.raises(FeatureIndexError, match="nothing.index' holds no vectors. Rebuild"):
        FeatureIndex.load(path)


def test_inner_product_index_is_refused(tmp_path):
    ip = faiss.index_factory(8, "Flat", faiss.METRIC_INNER_PRODUCT)
    ip.add(_features(10, 8))
    with pytest.raises(FeatureIndexError, match="L2 metric"):
        FeatureIndex.load(_write(ip, tmp_path / "ip.index"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"this is not an index at all\n", "not a readable FAISS index"),
        (b"PK\x03\x04rest of a zip", "looks like a model file"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:00\n", "Git LFS pointer"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.index"
    path.write_bytes(content)
    with pytest.raises(FeatureIndexError, match=message) as error:
        FeatureIndex.load(path)
    assert str(path) in str(error.value)


def test_truncated_missing_and_folder_paths(rvc_index, tmp_path):
    cut = tmp_path / "cut.index"
    cut.write_bytes(rvc_index[0].read_bytes()[:100])
    with pytest.raises(FeatureIndexError, match="not a readable FAISS index.*rebuild"):
        FeatureIndex.load(cut)
    with pytest.raises(FeatureIndexError, match="does not exist"):
        FeatureIndex.load(tmp_path / "missing.index")
    with pytest.raises(FeatureIndexError, match="is a folder"):
        FeatureIndex.load(tmp_path)


@pytest.mark.parametrize(("index_dim", "voice_dim"), [(256, 768), (768, 256)])
def test_check_dim(tmp_path, index_dim, voice_dim):
    _, added = build_rvc_index(tmp_path, "carol", _features(160, index_dim, seed=14), n_ivf=2, batch=8192)
    index = FeatureIndex.load(added)
    index.check_dim(index_dim, "carol")
    with pytest.raises(FeatureIndexError) as error:
        index.check_dim(voice_dim, "carol")
    assert str(error.value) == (
        f"Index '{added}' holds {index_dim}-d features but voice 'carol' uses {voice_dim}-d "
        "(v1 = 256, v2 = 768): pick the index trained for this voice."
    )
    with pytest.raises(FeatureIndexError, match=f"but the voice uses {voice_dim}-d"):
        index.check_dim(voice_dim)


def test_threads_share_one_index(rvc_index):
    added, _ = rvc_index
    queries = [_features(500, 8, seed=20 + i) for i in range(4)]
    expected = [FeatureIndex.load(added).blend(q, 0.7) for q in queries]
    shared = FeatureIndex.load(added)  # vectors() not computed yet: the threads race for it
    results: dict[int, list[np.ndarray]] = {}
    barrier = threading.Barrier(4)

    def work(i):
        barrier.wait()
        results[i] = [shared.blend(queries[i], 0.7) for _ in range(10)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(4):
        assert len(results[i]) == 10
        for got in results[i]:
            np.testing.assert_array_equal(got, expected[i])


# ---------------------------------------------------------------- names, listing and pairing


def _touch(path: Path, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"IwFl")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("added_IVF256_Flat_nprobe_1_alice_v2.index", "alice"),
        ("trained_IVF769_Flat_nprobe_1_my_voice_v1.index", "my_voice"),
        ("alice_IVF256_Flat_nprobe_1_alice_v2.index", "alice"),
        ("my_v2_IVF12_Flat_nprobe_1_my_v2_v2.index", "my_v2"),
        ("alice.index", "alice"),
        ("added_IVF256_Flat_nprobe_1.index", "added_IVF256_Flat_nprobe_1"),
    ],
)
def test_index_experiment_name(name, expected):
    assert index_experiment_name(Path("logs") / name) == expected


def test_is_index_file(tmp_path):
    assert is_index_file(_touch(tmp_path / "a.index")) and is_index_file(_touch(tmp_path / "b.INDEX"))
    assert not is_index_file(_touch(tmp_path / "a.pth"))
    assert not is_index_file(tmp_path / "missing.index")
    (tmp_path / "dir.index").mkdir()
    assert not is_index_file(tmp_path / "dir.index")


def test_list_indexes_recursive_sorted_without_trained_or_duplicates(tmp_path):
    logs, links = tmp_path / "logs", tmp_path / "assets" / "indices"
    added = _touch(logs / "zed" / "added_IVF4_Flat_nprobe_1_zed_v2.index")
    _touch(logs / "zed" / "trained_IVF4_Flat_nprobe_1_zed_v2.index")
    deep = _touch(logs / "amy" / "old" / "amy.index")
    _touch(logs / "amy" / "notes.txt")
    links.mkdir(parents=True)
    (links / "zed_IVF4_Flat_nprobe_1_zed_v2.index").symlink_to(added)
    (links / "dangling_IVF4_Flat_nprobe_1_x_v2.index").symlink_to(tmp_path / "nowhere.index")
    own = _touch(links / "bea.index")
    assert list_indexes(logs, links, logs / "zed", tmp_path / "no-such-dir") == sorted([added, deep, own])
    assert list_indexes(links) == sorted([own, links / "zed_IVF4_Flat_nprobe_1_zed_v2.index"])


@pytest.fixture
def tree(tmp_path):
    """weights/ and logs/ laid out like RVC; returns (weights dir, logs dir)."""
    weights, logs = tmp_path / "weights", tmp_path / "logs"
    weights.mkdir()
    _touch(logs / "alpha" / "added_IVF4_Flat_nprobe_1_alpha_v2.index")
    _touch(logs / "alice2" / "added_IVF4_Flat_nprobe_1_alice2_v2.index")
    _touch(logs / "alice" / "trained_IVF4_Flat_nprobe_1_alice_v2.index")
    return weights, logs


def test_pairing_never_matches_substrings(tree):
    weights, logs = tree
    assert find_index_for_voice(weights / "a.pth", [logs]) is None
    assert find_index_for_voice(weights / "alice.pth", [logs]) is None  # only alice2's index and a trained_ file
    assert find_index_for_voice(weights / "lpha.pth", [logs]) is None


def test_pairing_by_experiment_name_and_trainer_suffix(tree):
    weights, logs = tree
    added = _touch(logs / "alice" / "added_IVF4_Flat_nprobe_1_alice_v2.index")
    for voice in ("alice.pth", "alice_e20_s400.pth", "alice_e20.pth"):
        assert find_index_for_voice(weights / voice, [logs]) == added
    assert find_index_for_voice(weights / "alice_e20_s400_x.pth", [logs]) is None
    assert (
        find_index_for_voice(weights / "alpha.pth", [logs])
        == logs / "alpha" / "added_IVF4_Flat_nprobe_1_alpha_v2.index"
    )


def test_pairing_by_link_name_and_by_folder(tree, tmp_path):
    weights, logs = tree
    links = tmp_path / "assets" / "indices"
    link = _touch(links / "dave_IVF8_Flat_nprobe_1_dave_v1.index")
    assert find_index_for_voice(weights / "dave.pth", [logs, links]) == link
    old_style = _touch(logs / "erin" / "added_IVF4_Flat_nprobe_1.index")
    assert find_index_for_voice(weights / "erin_e5_s50.pth", [logs]) == old_style
    assert find_index_for_voice(weights / "erin.pth", [logs / "erin"]) is None  # the search root's own name is not used


def test_pairing_prefers_same_folder_then_added_then_newest(tree):
    weights, logs = tree
    _touch(logs / "fred" / "added_IVF4_Flat_nprobe_1_fred_v2.index", mtime=2_000_000_000)
    beside = _touch(weights / "fred.index", mtime=1_000_000_000)
    assert find_index_for_voice(weights / "fred.pth", [logs]) == beside
    assert find_index_for_voice(weights / "fred.pth", []) == beside
    assert find_index_for_voice(weights / "fred.pth", str(logs)) == beside  # a single folder works too

    plain = _touch(logs / "gina" / "gina.index", mtime=2_000_000_000)
    old = _touch(logs / "gina" / "added_IVF4_Flat_nprobe_1_gina_v2.index", mtime=1_000_000_000)
    assert find_index_for_voice(weights / "gina.pth", [logs]) == old
    new = _touch(logs / "gina" / "v2" / "added_IVF9_Flat_nprobe_1_gina_v2.index", mtime=1_500_000_000)
    assert find_index_for_voice(weights / "gina.pth", [logs]) == new
    new.unlink()
    old.unlink()
    assert find_index_for_voice(weights / "gina.pth", [logs]) == plain
