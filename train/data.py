"""Training data: the dataset over a filelist, batch collation and the length-bucketed sampler (spec §6.3).

Differences from RVC, on purpose: bucketing uses each slice's true frame count
(read from the WAV header) instead of ``file size // (3·hop)``; boundaries are
RVC's, converted to seconds (0.75 s … 6.75 s); lengths are aligned to the
minimum of *all* arrays (pitch included); the per-rank batch is ``batch_size``
(RVC multiplied it by the GPU count); a stale or unreadable spectrogram cache
is rebuilt.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from infer.atomic import atomic_torch_save
from infer.safe_load import ModelFileError, load_torch_file
from train.spectrogram import Spectrogram

log = logging.getLogger(__name__)

MAX_FRAMES = 900  # RVC truncates every item to 900 frames (9 s)
BUCKET_SECONDS = tuple(0.75 * i for i in range(1, 10))  # RVC's [100..900] size units, in seconds


class DatasetError(ValueError):
    """A training file is missing or does not fit the experiment; the message names it and says what to do."""


class FilelistEntryLike(Protocol):
    """What the dataset needs from a ``train.filelist.FilelistEntry``."""

    gt_wav: Path
    features: Path
    f0_coarse: Path | None
    f0_hz: Path | None
    speaker_id: int


@dataclass
class TrainingItem:
    """One aligned sample: T frames at sample_rate / hop frames per second.

    ``spec`` (F, T) float32 linear spectrogram, ``wave`` (1, T·hop) float32,
    ``phone`` (T, C) float32 content features, ``pitch`` (T,) int64 coarse
    pitch and ``pitchf`` (T,) float32 Hz (None without pitch guidance).
    """

    spec: torch.Tensor
    wave: torch.Tensor
    phone: torch.Tensor
    pitch: torch.Tensor | None
    pitchf: torch.Tensor | None
    speaker_id: int


@dataclass
class Batch:
    """A zero-padded batch sorted by spectrogram length, longest first.

    ``phone`` (B, T, C), ``phone_lengths`` (B,), ``pitch`` (B, T) int64 and
    ``pitchf`` (B, T) float (None without pitch), ``spec`` (B, F, T),
    ``spec_lengths`` (B,), ``wave`` (B, 1, T·hop), ``wave_lengths`` (B,),
    ``sid`` (B,) int64 speaker ids.
    """

    phone: torch.Tensor
    phone_lengths: torch.Tensor
    pitch: torch.Tensor | None
    pitchf: torch.Tensor | None
    spec: torch.Tensor
    spec_lengths: torch.Tensor
    wave: torch.Tensor
    wave_lengths: torch.Tensor
    sid: torch.Tensor

    def _map(self, fn) -> Batch:
        return Batch(**{f.name: (None if (v := getattr(self, f.name)) is None else fn(v)) for f in fields(self)})

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """Used by ``DataLoader(pin_memory=True)``."""
        return self._map(lambda t: t.pin_memory())

    @property
    def size(self) -> int:
        return int(self.sid.shape[0])


def spec_cache_path(wav_path: Path) -> Path:
    """``0_gt_wavs/<name>.wav`` → ``0_gt_wavs/<name>.spec.pt`` (RVC's cache name)."""
    return Path(wav_path).with_suffix(".spec.pt")


class TrainingDataset(Dataset):
    """Items of a filelist for a model at ``data.sampling_rate`` (see :class:`TrainingItem`).

    ``lengths`` holds each item's true frame count (samples // hop, before the
    900-frame cut), read from the WAV headers when the dataset is built; a WAV
    at the wrong sample rate is refused there, naming the file.
    """

    def __init__(
        self,
        entries: Sequence[FilelistEntryLike],
        data: Any,
        *,
        use_f0: bool,
        feature_dim: int | None = None,
        spk_embed_dim: int | None = None,
        max_frames: int = MAX_FRAMES,
        spectrogram: Spectrogram | None = None,
    ) -> None:
        self.entries = list(entries)
        self.use_f0 = bool(use_f0)
        self.feature_dim = feature_dim
        self.max_frames = int(max_frames)
        self.hop_length = int(data.hop_length)
        self.sample_rate = int(data.sampling_rate)
        self.spectrogram = spectrogram or Spectrogram.from_hparams(data)
        self.lengths = [self._frames_of(entry, spk_embed_dim) for entry in self.entries]

    def _frames_of(self, entry: FilelistEntryLike, spk_embed_dim: int | None) -> int:
        path = Path(entry.gt_wav)
        if self.use_f0 and (entry.f0_coarse is None or entry.f0_hz is None):
            raise DatasetError(
                f"The filelist entry for '{path}' has no pitch files, but this model uses pitch guidance; "
                "run pitch extraction and write the filelist again."
            )
        if spk_embed_dim is not None and not 0 <= int(entry.speaker_id) < spk_embed_dim:
            raise DatasetError(f"Speaker id {entry.speaker_id} of '{path}' is outside 0..{spk_embed_dim - 1}.")
        try:
            info = sf.info(str(path))
        except (OSError, RuntimeError) as exc:
            raise DatasetError(f"Cannot read training audio '{path}' ({exc}); run preprocessing again.") from exc
        if info.samplerate != self.sample_rate:
            raise DatasetError(
                f"'{path}' is at {info.samplerate} Hz but the model trains at {self.sample_rate} Hz; "
                "run preprocessing again with the experiment's sample rate."
            )
        return int(info.frames) // self.hop_length

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> TrainingItem:
        entry = self.entries[index]
        phone = self._features(Path(entry.features))
        pitch = pitchf = None
        if self.use_f0:
            pitch = torch.from_numpy(self._array(Path(entry.f0_coarse)).astype(np.int64))
            pitchf = torch.from_numpy(self._array(Path(entry.f0_hz)).astype(np.float32))
        wave = self._audio(Path(entry.gt_wav))
        spec = self._spectrogram(Path(entry.gt_wav), wave)
        frames = min(phone.shape[0], spec.shape[-1], self.max_frames)
        if self.use_f0:
            frames = min(frames, pitch.shape[0], pitchf.shape[0])
            pitch, pitchf = pitch[:frames], pitchf[:frames]
        return TrainingItem(
            spec=spec[:, :frames].contiguous(),
            wave=wave[: frames * self.hop_length].unsqueeze(0),
            phone=phone[:frames],
            pitch=pitch,
            pitchf=pitchf,
            speaker_id=int(entry.speaker_id),
        )

    @staticmethod
    def _array(path: Path) -> np.ndarray:
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"Cannot read '{path}' ({exc}); run feature/pitch extraction again.") from exc

    def _features(self, path: Path) -> torch.Tensor:
        feats = self._array(path)
        if feats.ndim != 2 or (self.feature_dim is not None and feats.shape[1] != self.feature_dim):
            raise DatasetError(
                f"Features '{path}' have shape {feats.shape}, but this model needs "
                f"(frames, {self.feature_dim}); extract features again for this model version."
            )
        feats = np.repeat(feats, 2, axis=0)  # 50 Hz content frames → 100 Hz synthesizer frames
        return torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))

    def _audio(self, path: Path) -> torch.Tensor:
        # float WAVs come back unscaled, int16 ones (RVC's mute files) scaled to [-1, 1]
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        if rate != self.sample_rate:
            raise DatasetError(f"'{path}' is at {rate} Hz but the model trains at {self.sample_rate} Hz.")
        return torch.from_numpy(np.ascontiguousarray(audio.mean(axis=1)))

    def _spectrogram(self, wav_path: Path, wave: torch.Tensor) -> torch.Tensor:
        cache = spec_cache_path(wav_path)
        expected = (self.spectrogram.n_freqs, self.spectrogram.frames(wave.shape[0]))
        if cache.exists():
            try:
                spec = load_torch_file(cache)
                if isinstance(spec, torch.Tensor) and tuple(spec.shape) == expected:
                    return spec.float()
                log.warning("Spectrogram cache '%s' does not match its audio; rebuilding it.", cache)
            except ModelFileError as exc:
                log.warning("Spectrogram cache '%s' is unreadable (%s); rebuilding it.", cache, exc)
        spec = self.spectrogram.linear(wave)
        try:
            atomic_torch_save(spec, cache)
        except OSError as exc:  # a read-only dataset still trains, just without the cache
            log.warning("Could not cache the spectrogram at '%s' (%s).", cache, exc)
        return spec


def collate(items: Sequence[TrainingItem]) -> Batch:
    """Zero-pad items into a :class:`Batch`, sorted by spectrogram length (descending)."""
    order = sorted(range(len(items)), key=lambda i: items[i].spec.shape[-1], reverse=True)
    items = [items[i] for i in order]
    batch = len(items)
    n_freqs, feat_dim = items[0].spec.shape[0], items[0].phone.shape[1]
    max_spec = max(it.spec.shape[-1] for it in items)
    max_wave = max(it.wave.shape[-1] for it in items)
    max_phone = max(it.phone.shape[0] for it in items)
    spec = torch.zeros(batch, n_freqs, max_spec)
    wave = torch.zeros(batch, 1, max_wave)
    phone = torch.zeros(batch, max_phone, feat_dim)
    use_f0 = items[0].pitch is not None
    pitch = torch.zeros(batch, max_phone, dtype=torch.long) if use_f0 else None
    pitchf = torch.zeros(batch, max_phone) if use_f0 else None
    for i, it in enumerate(items):
        spec[i, :, : it.spec.shape[-1]] = it.spec
        wave[i, :, : it.wave.shape[-1]] = it.wave
        phone[i, : it.phone.shape[0]] = it.phone
        if use_f0:
            pitch[i, : it.pitch.shape[0]] = it.pitch
            pitchf[i, : it.pitchf.shape[0]] = it.pitchf
    return Batch(
        phone=phone,
        phone_lengths=torch.tensor([it.phone.shape[0] for it in items], dtype=torch.long),
        pitch=pitch,
        pitchf=pitchf,
        spec=spec,
        spec_lengths=torch.tensor([it.spec.shape[-1] for it in items], dtype=torch.long),
        wave=wave,
        wave_lengths=torch.tensor([it.wave.shape[-1] for it in items], dtype=torch.long),
        sid=torch.tensor([it.speaker_id for it in items], dtype=torch.long),
    )


def bucket_boundaries(frames_per_second: float, seconds: Sequence[float] = BUCKET_SECONDS) -> list[int]:
    """RVC's bucket edges in frames for a model with ``frames_per_second`` (sample_rate / hop)."""
    return [round(s * frames_per_second) for s in seconds]


class BucketSampler(torch.utils.data.Sampler):
    """Batches of items with similar lengths, split across ``num_replicas`` ranks (RVC's DistributedBucketSampler).

    An item of ``length`` frames goes to the bucket (b_i, b_{i+1}]; items at or
    under the first edge or over the last are dropped (their indices are in
    ``dropped``).  Each bucket is padded by repetition to a multiple of
    ``num_replicas × batch_size``, so every rank gets the same number of
    batches of exactly ``batch_size`` items.  Shuffling is seeded by
    ``seed + epoch`` (call :meth:`set_epoch` before each epoch).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        boundaries: Sequence[int],
        *,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        if batch_size < 1 or num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"bad sampler settings: batch {batch_size}, rank {rank} of {num_replicas}")
        self.batch_size, self.num_replicas, self.rank = int(batch_size), int(num_replicas), int(rank)
        self.shuffle, self.seed, self.epoch = shuffle, int(seed), 0
        edges = list(boundaries)
        buckets: list[list[int]] = [[] for _ in range(len(edges) - 1)]
        self.dropped: list[int] = []
        for index, length in enumerate(lengths):
            slot = bisect.bisect_left(edges, length) - 1  # edges[slot] < length <= edges[slot + 1]
            if 0 <= slot < len(buckets):
                buckets[slot].append(index)
            else:
                self.dropped.append(index)
        self.buckets = [b for b in buckets if b]
        if not self.buckets:
            raise DatasetError(
                f"None of the {len(lengths)} training samples is between {edges[0]} and {edges[-1]} frames long "
                "(0.75 s to 6.75 s of audio); preprocess the dataset again (RVC slices it into ~3 s pieces)."
            )
        per_step = self.num_replicas * self.batch_size
        self.bucket_sizes = [len(b) + (per_step - len(b) % per_step) % per_step for b in self.buckets]
        self.num_samples = sum(self.bucket_sizes) // self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples // self.batch_size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        batches: list[list[int]] = []
        for bucket, padded_size in zip(self.buckets, self.bucket_sizes):
            order = (
                torch.randperm(len(bucket), generator=generator).tolist() if self.shuffle else list(range(len(bucket)))
            )
            extra = padded_size - len(bucket)
            order = order + order * (extra // len(order)) + order[: extra % len(order)]
            mine = order[self.rank :: self.num_replicas]
            for start in range(0, len(mine), self.batch_size):
                batches.append([bucket[i] for i in mine[start : start + self.batch_size]])
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return iter(batches)
