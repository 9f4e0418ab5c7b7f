"""Training data: dataset alignment/truncation/caching, collation, the bucketed sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.train.conftest import TINY_DISC, TINY_MODEL, make_experiment, tiny_config  # noqa: F401 (re-exported)
from train.data import (
    BucketSampler,
    DatasetError,
    TrainingDataset,
    bucket_boundaries,
    collate,
    spec_cache_path,
)
from train.experiment import ExperimentConfig
from train.filelist import read_filelist
from train.spectrogram import Spectrogram

SR = 32000
HOP = 320


def _dataset(exp: Path, **kwargs) -> TrainingDataset:
    config = ExperimentConfig.load(exp / "config.json")
    return TrainingDataset(
        read_filelist(exp / "filelist.txt"),
        config.data,
        use_f0=config.use_f0,
        feature_dim=config.model.feature_dim,
        spk_embed_dim=config.model.spk_embed_dim,
        **kwargs,
    )


def test_items_are_aligned_and_cached(tmp_path):
    exp = make_experiment(tmp_path, seconds=(0.9, 1.3))
    dataset = _dataset(exp)
    lengths = sorted(dataset.lengths)
    assert lengths == [int(0.9 * SR) // HOP, int(1.3 * SR) // HOP, 3 * SR // HOP, 3 * SR // HOP]
    for index, entry in enumerate(dataset.entries):
        item = dataset[index]
        frames = item.spec.shape[-1]
        feats = np.load(entry.features)
        # features doubled to 100 Hz, then everything cut to the shortest array
        assert frames == min(2 * feats.shape[0], dataset.lengths[index], np.load(entry.f0_hz).shape[0])
        assert item.phone.shape == (frames, 16) and item.pitch.shape == item.pitchf.shape == (frames,)
        assert torch.equal(item.phone[0], item.phone[1]) and torch.equal(item.phone[2], torch.from_numpy(feats[1]))
        assert item.wave.shape == (1, frames * HOP) and item.spec.shape[0] == 513
        assert item.pitch.dtype == torch.int64 and item.spec.dtype == torch.float32
        assert spec_cache_path(entry.gt_wav).is_file()
    mute = next(i for i, e in enumerate(dataset.entries) if e.gt_wav.name == "mute.wav")
    assert dataset[mute].wave.abs().max() == 0  # int16 silence reads as float zeros


def test_spectrogram_cache_is_reused_and_rebuilt_when_bad(tmp_path):
    exp = make_experiment(tmp_path, seconds=(1.0,), mute=False)
    dataset = _dataset(exp)
    first = dataset[0].spec
    cache = spec_cache_path(dataset.entries[0].gt_wav)
    torch.save(torch.full_like(first, 7.0), cache)  # a readable cache is used as is
    assert torch.all(dataset[0].spec == 7.0)
    cache.write_bytes(b"not a torch file")  # unreadable: rebuilt and rewritten
    assert torch.allclose(dataset[0].spec, first)
    torch.save(torch.zeros(3, 3), cache)  # stale shape (another STFT setting): rebuilt
    assert torch.allclose(dataset[0].spec, first)
    assert torch.load(cache, weights_only=True).shape == first.shape


def test_features_truncated_to_900_frames(tmp_path):
    exp = make_experiment(tmp_path, seconds=(1.0,), mute=False)
    entry = read_filelist(exp / "filelist.txt")[0]
    np.save(entry.features, np.ones((600, 16), dtype=np.float32))
    item = _dataset(exp, max_frames=40)[0]
    assert item.phone.shape[0] == item.spec.shape[-1] == item.pitch.shape[0] == 40
    assert item.wave.shape[-1] == 40 * HOP


def test_bad_inputs_are_named(tmp_path):
    exp = make_experiment(tmp_path, seconds=(1.0,), mute=False)
    config = ExperimentConfig.load(exp / "config.json")
    entries = read_filelist(exp / "filelist.txt")
    wav = entries[0].gt_wav
    sf.write(wav, np.zeros(SR, dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(DatasetError, match=r"16000 Hz.*32000"):
        _dataset(exp)
    sf.write(wav, np.zeros(SR, dtype=np.float32), SR, subtype="FLOAT")
    np.save(entries[0].features, np.zeros((60, 768), dtype=np.float32))
    with pytest.raises(DatasetError, match="768"):
        _dataset(exp)[0]
    with pytest.raises(DatasetError, match="Speaker id"):
        TrainingDataset(entries, config.data, use_f0=True, spk_embed_dim=0)


def test_collate_sorts_and_pads(tmp_path):
    exp = make_experiment(tmp_path, seconds=(0.9, 1.3), mute=False)
    dataset = _dataset(exp)
    items = [dataset[0], dataset[1]]
    batch = collate(items)
    longest = max(items, key=lambda it: it.spec.shape[-1])
    shortest = min(items, key=lambda it: it.spec.shape[-1])
    assert batch.spec_lengths.tolist() == [longest.spec.shape[-1], shortest.spec.shape[-1]]
    n = shortest.spec.shape[-1]
    assert torch.equal(batch.spec[1, :, :n], shortest.spec) and batch.spec[1, :, n:].abs().sum() == 0
    assert torch.equal(batch.pitch[1, :n], shortest.pitch) and batch.pitch[1, n:].abs().sum() == 0
    assert batch.wave.shape == (2, 1, longest.wave.shape[-1]) and batch.wave[1, 0, n * HOP :].abs().sum() == 0
    assert batch.phone_lengths.tolist() == batch.spec_lengths.tolist()
    assert batch.wave_lengths.tolist() == [longest.wave.shape[-1], shortest.wave.shape[-1]]
    assert batch.sid.dtype == torch.int64 and batch.to("cpu").phone.shape == (2, longest.phone.shape[0], 16)


def test_collate_without_pitch(tmp_path):
    exp = make_experiment(tmp_path, seconds=(0.9,), use_f0=False, mute=False)
    batch = collate([_dataset(exp)[0]])
    assert batch.pitch is None and batch.pitchf is None


def test_sampler_buckets_and_drops_by_true_length():
    boundaries = bucket_boundaries(100)  # frames at 100 frames/s
    assert boundaries == [75, 150, 225, 300, 375, 450, 525, 600, 675]
    lengths = [75, 76, 150, 151, 675, 676, 10, 300]
    sampler = BucketSampler(lengths, 2, boundaries, shuffle=False)
    assert sampler.dropped == [0, 5, 6]  # at or under 0.75 s, over 6.75 s
    assert sampler.buckets == [[1, 2], [3], [7], [4]]
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4 and all(len(b) == 2 for b in batches)
    assert [3, 3] in batches  # a short bucket is padded by repeating its items
    for batch in batches:  # every batch holds one bucket only
        assert len({next(i for i, b in enumerate(sampler.buckets) if x in b) for x in batch}) == 1


def test_sampler_is_deterministic_per_epoch_and_splits_replicas():
    lengths = [80 + 7 * i for i in range(40)]
    boundaries = bucket_boundaries(100)
    first = BucketSampler(lengths, 3, boundaries)
    first.set_epoch(4)
    again = BucketSampler(lengths, 3, boundaries)
    again.set_epoch(4)
    assert list(first) == list(again)
    again.set_epoch(5)
    assert list(first) != list(again)
    ranks = [BucketSampler(lengths, 3, boundaries, num_replicas=2, rank=r) for r in (0, 1)]
    for sampler in ranks:
        sampler.set_epoch(1)
    batches = [list(sampler) for sampler in ranks]
    assert len(batches[0]) == len(batches[1]) == len(ranks[0]) > 0
    assert all(len(b) == 3 for rank in batches for b in rank)  # per-rank batch is batch_size, not ×replicas
    seen = [i for rank in batches for b in rank for i in b]
    assert set(seen) == set(range(40))  # the ranks together cover every item


def test_sampler_refuses_when_everything_is_dropped():
    with pytest.raises(DatasetError, match="0.75 s to 6.75 s"):
        BucketSampler([10, 20, 900], 2, bucket_boundaries(100))


def test_spectrogram_object_pickles():
    import pickle

    spec = Spectrogram(SR, 1024, HOP, 1024, 80)
    spec.linear(torch.zeros(2000))
    copy = pickle.loads(pickle.dumps(spec))
    assert torch.equal(copy.linear(torch.ones(2000)), spec.linear(torch.ones(2000)))
