"""The silent training sample ``logs/mute/`` that every filelist mixes in (spec §1.5).

RVC ships this folder; we make it on first use.  It is 3 s of digital silence:

* ``0_gt_wavs/mute32k.wav`` / ``mute40k.wav`` / ``mute48k.wav``: 16-bit PCM mono,
  96000 / 120000 / 144000 zero samples;
* ``1_16k_wavs/mute.wav``: 48000 zero samples at 16 kHz (16-bit PCM);
* ``2a_f0/mute.wav.npy``: 301 ones (int64 coarse pitch: unvoiced);
* ``2b-f0nsf/mute.wav.npy``: 301 zeros (float32 Hz);
* ``3_feature256/mute.npy`` / ``3_feature768/mute.npy``: (149, D) float32, the
  content encoder's features of the 16 kHz silence.

The f0 files keep RVC's 301 frames although ``48000 // 160`` is 300: the files
RVC ships then stay valid as they are, and the training loader cuts pitch,
features and audio to their common length anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from infer.atomic import atomic_path
from infer.content import ContentEncoder, load_content_encoder
from infer.models.config import FEATURE_DIMS, SAMPLE_RATE_TAGS, tag_from_sample_rate
from train.experiment import ExperimentPaths
from train.extract_workers import save_npy_atomic

MUTE_SECONDS = 3
MUTE_F0_FRAMES = 301
MUTE_16K_SAMPLES = MUTE_SECONDS * 16000
MUTE_FEATURE_FRAMES = (MUTE_16K_SAMPLES - 400) // 320 + 1  # 149


@dataclass(frozen=True)
class MuteSample:
    """The four files a filelist's mute entries point at, for one sample rate and version."""

    gt_wav: Path
    features: Path
    f0_coarse: Path
    f0_hz: Path


def mute_sample(logs_dir: str | Path, sample_rate: int, version: str) -> MuteSample:
    """Where the mute files for ``sample_rate`` (32000/40000/48000) and ``version`` live; creates nothing."""
    if sample_rate not in SAMPLE_RATE_TAGS.values():
        raise ValueError(f"No mute sample for {sample_rate} Hz; use one of {sorted(SAMPLE_RATE_TAGS.values())}.")
    if version not in FEATURE_DIMS:
        raise ValueError(f"Unknown model version {version!r}; use v1 or v2.")
    paths = ExperimentPaths(Path(logs_dir).absolute() / "mute")
    return MuteSample(
        gt_wav=paths.gt_wavs / f"mute{tag_from_sample_rate(sample_rate)}.wav",
        features=paths.features(version) / "mute.npy",
        f0_coarse=paths.f0_coarse / "mute.wav.npy",
        f0_hz=paths.f0_hz / "mute.wav.npy",
    )


def ensure_mute(
    logs_dir: str | Path, sample_rate: int, version: str, encoder: ContentEncoder | str | Path | None
) -> MuteSample:
    """Make (or reuse) ``<logs_dir>/mute/`` for ``sample_rate`` and ``version``; returns its paths.

    ``encoder`` is a loaded :class:`~infer.content.ContentEncoder` or the path of
    one (loaded on the CPU), or None to accept only existing features of the
    standard width (256 for v1, 768 for v2).  An existing file is kept when it
    fits: the right sample count and rate for the WAVs, 301 ones / zeros for the
    f0 files, (149, D) finite float32 features with D the encoder's width for
    ``version``.  Anything else is rewritten (atomically).
    """
    sample = mute_sample(logs_dir, sample_rate, version)
    silence_16k = Path(sample.gt_wav).parent.parent / "1_16k_wavs" / "mute.wav"
    _ensure_silent_wav(sample.gt_wav, sample_rate, MUTE_SECONDS * sample_rate)
    _ensure_silent_wav(silence_16k, 16000, MUTE_16K_SAMPLES)
    _ensure_array(sample.f0_coarse, np.ones(MUTE_F0_FRAMES, dtype=np.int64))
    _ensure_array(sample.f0_hz, np.zeros(MUTE_F0_FRAMES, dtype=np.float32))
    _ensure_features(sample.features, version, encoder)
    return sample


def _ensure_silent_wav(path: Path, sample_rate: int, samples: int) -> None:
    try:
        info = sf.info(str(path))
        if (info.samplerate, info.frames, info.channels) == (sample_rate, samples, 1):
            return
    except (OSError, RuntimeError):  # missing or unreadable: write it
        pass
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.zeros(samples, dtype=np.int16), sample_rate, subtype="PCM_16", format="WAV")


def _load_or_none(path: Path) -> np.ndarray | None:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def _ensure_array(path: Path, expected: np.ndarray) -> None:
    existing = _load_or_none(path)
    if existing is None or existing.shape != expected.shape or not np.array_equal(existing, expected):
        save_npy_atomic(expected, path)


def _ensure_features(path: Path, version: str, encoder: ContentEncoder | str | Path | None) -> None:
    loaded = None if encoder is None else _loaded(encoder)
    width = FEATURE_DIMS[version] if loaded is None else loaded.feature_dim(version)
    existing = _load_or_none(path)
    if existing is not None and _features_fit(existing, width):
        return
    if loaded is None:
        raise ValueError(
            f"The mute features '{path}' are missing or do not fit; pass the content encoder to make them."
        )
    features = loaded.extract(np.zeros(MUTE_16K_SAMPLES, dtype=np.float32), version)
    if features.shape != (MUTE_FEATURE_FRAMES, width) or not np.isfinite(features).all():
        raise ValueError(
            f"The content encoder '{loaded.source}' gave {features.shape} features for 3 s of silence; "
            f"expected ({MUTE_FEATURE_FRAMES}, {width}) without NaN. Use RVC's hubert_base.pt."
        )
    save_npy_atomic(features.astype(np.float32), path)


def _features_fit(features: np.ndarray, width: int) -> bool:
    return (
        features.dtype == np.float32
        and features.shape == (MUTE_FEATURE_FRAMES, width)
        and bool(np.isfinite(features).all())
    )


def _loaded(encoder: ContentEncoder | str | Path) -> ContentEncoder:
    return encoder if isinstance(encoder, ContentEncoder) else load_content_encoder(encoder)
