"""Auto key: the key shift that moves the input's median pitch into the voice's range."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

F0_STATS_KEY = "f0_stats"  # in a voice's metadata: {"median": Hz, "p5": Hz, "p95": Hz}
_TRAINER_SUFFIX = re.compile(r"_e\d+(_s\d+)?$")
MIN_VOICED_FRAMES = 10


def median_voiced(f0: np.ndarray) -> float | None:
    """Median of the voiced (f0 > 0) frames, or None with fewer than 10 of them."""
    voiced = np.asarray(f0)[np.asarray(f0) > 0]
    return float(np.median(voiced)) if voiced.size >= MIN_VOICED_FRAMES else None


def voice_median_f0(metadata: dict, voice_name: str, logs_dir: str | Path | None = None) -> float | None:
    """The voice's median pitch in Hz: recorded at training, or measured from its experiment's f0 files.

    Looks in ``metadata["f0_stats"]["median"]`` first, then at
    ``<logs_dir>/<experiment>/2b-f0nsf/*.npy`` (the training f0, Hz), where the
    experiment is the voice name without a trainer suffix like ``_e20_s400``.
    """
    stats = metadata.get(F0_STATS_KEY) if isinstance(metadata, dict) else None
    if isinstance(stats, dict) and stats.get("median"):
        return float(stats["median"])
    if logs_dir is None:
        return None
    folder = Path(logs_dir) / _TRAINER_SUFFIX.sub("", voice_name) / "2b-f0nsf"
    files = sorted(folder.glob("*.npy"))[:400] if folder.is_dir() else []
    if not files:
        return None
    values = [np.load(path, allow_pickle=False).ravel() for path in files]
    return median_voiced(np.concatenate(values))


def choose_key(input_median: float | None, voice_median: float | None, *, voice_name: str = "") -> int:
    """Semitones (rounded, within ±24) that move ``input_median`` to ``voice_median``."""
    if voice_median is None:
        raise ValueError(
            f"Auto key needs the pitch range of voice '{voice_name}', which it does not record and whose "
            "training data was not found in logs/. Set the key by hand instead."
        )
    if input_median is None:
        raise ValueError(
            "Auto key found too little voiced sound in the input to measure its pitch; set the key by hand."
        )
    return int(max(-24, min(24, round(12 * math.log2(voice_median / input_median)))))
