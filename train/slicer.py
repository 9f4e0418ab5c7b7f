"""RVC's silence slicer (``slicer2``): cut a recording at its long silences.

Pure over arrays.  The algorithm is RVC's (spec §2 step 4), frame for frame, with
one fix: the guard that returns short inputs whole compares the input's length in
samples with ``min_length`` converted to samples (RVC compares samples with frames,
so its guard never fires).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_RMS_BLOCK_FRAMES = 4096  # frames per block when computing the RMS; bounds the temporary memory


def frame_rms(samples: np.ndarray, window: int, hop: int) -> np.ndarray:
    """librosa-style RMS of a 1-D signal: shape (1 + (N + 2 * (window // 2) - window) // hop,).

    The signal is zero-padded by ``window // 2`` on both sides; frame ``j`` covers
    padded samples ``[j * hop, j * hop + window)``, so it is centred on sample ``j * hop``.
    The result has the dtype of ``samples`` (float).
    """
    half = window // 2
    padded = np.pad(samples, (half, half))
    frames = sliding_window_view(padded, window)[::hop]
    rms = np.empty(frames.shape[0], dtype=padded.dtype)
    for start in range(0, frames.shape[0], _RMS_BLOCK_FRAMES):
        block = frames[start : start + _RMS_BLOCK_FRAMES]
        rms[start : start + block.shape[0]] = np.sqrt(np.mean(np.square(block), axis=-1))
    return rms


def _silent_runs(silent: np.ndarray) -> list[tuple[int, int | None]]:
    """Runs of True in ``silent`` as ``(first, first loud frame after it)``; None for a run reaching the end."""
    edges = np.flatnonzero(np.diff(silent.astype(np.int8)))
    starts = [0] if silent[0] else []
    starts += [int(e) + 1 for e in edges if not silent[e]]
    ends: list[int | None] = [int(e) + 1 for e in edges if silent[e]]
    if len(ends) < len(starts):
        ends.append(None)
    return list(zip(starts, ends))


class Slicer:
    """Splits audio at silences longer than ``min_interval_ms`` (RVC's ``Slicer`` from ``slicer2.py``).

    The defaults are the values RVC's training preprocessing uses: -42 dB, 1500 ms,
    400 ms, 15 ms hop, 500 ms of silence kept.  Derived frame counts (one frame =
    ``hop`` samples) are exposed as attributes: ``hop``, ``window`` (the RMS window,
    4 hops), ``min_length``, ``min_interval`` and ``max_silence_kept``, all in frames
    except ``hop`` and ``window`` (samples).
    """

    def __init__(
        self,
        sample_rate: int,
        threshold_db: float = -42.0,
        min_length_ms: int = 1500,
        min_interval_ms: int = 400,
        hop_ms: int = 15,
        max_silence_kept_ms: int = 500,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if not min_length_ms >= min_interval_ms >= hop_ms > 0:
            raise ValueError(
                f"need min_length_ms >= min_interval_ms >= hop_ms > 0, got {min_length_ms}, {min_interval_ms}, {hop_ms}"
            )
        if max_silence_kept_ms < hop_ms:
            raise ValueError(f"max_silence_kept_ms ({max_silence_kept_ms}) must be at least hop_ms ({hop_ms})")
        self.sample_rate = sample_rate
        interval_samples = sample_rate * min_interval_ms / 1000
        self.threshold = 10 ** (threshold_db / 20.0)
        self.hop = round(sample_rate * hop_ms / 1000)
        self.window = min(round(interval_samples), 4 * self.hop)
        self.min_length = round(sample_rate * min_length_ms / 1000 / self.hop)
        self.min_interval = round(interval_samples / self.hop)
        self.max_silence_kept = round(sample_rate * max_silence_kept_ms / 1000 / self.hop)

    def cuts(self, rms: np.ndarray) -> list[tuple[int, int]]:
        """The silent frame ranges to remove, ``[(begin, end), ...]`` in frames, from the frame RMS."""
        keep = self.max_silence_kept
        total = rms.shape[0]
        cuts: list[tuple[int, int]] = []
        clip_start = 0
        runs = _silent_runs(rms < self.threshold) if total else []
        for start, loud in runs:
            if loud is None:  # silence reaching the end of the signal
                if total - start >= self.min_interval:
                    end = min(total, start + keep)
                    cuts.append((start + int(rms[start : end + 1].argmin()), total + 1))
                break
            length = loud - start
            leading = start == 0 and loud > keep
            middle = length >= self.min_interval and loud - clip_start >= self.min_length
            if not (leading or middle):
                continue
            if length <= keep:
                quietest = start + int(rms[start : loud + 1].argmin())
                cuts.append((0, quietest) if start == 0 else (quietest, quietest))
                clip_start = quietest
                continue
            quiet_left = start + int(rms[start : start + keep + 1].argmin())
            quiet_right = loud - keep + int(rms[loud - keep : loud + 1].argmin())
            if start == 0:
                cuts.append((0, quiet_right))
                clip_start = quiet_right
            elif length <= 2 * keep:
                # The kept margins overlap: also consider the quietest frame where they overlap.
                middle_quiet = loud - keep + int(rms[loud - keep : start + keep + 1].argmin())
                cuts.append((min(quiet_left, middle_quiet), max(quiet_right, middle_quiet)))
                clip_start = max(quiet_right, middle_quiet)
            else:
                cuts.append((quiet_left, quiet_right))
                clip_start = quiet_right
        return cuts

    def ranges(self, audio: np.ndarray) -> list[tuple[int, int]]:
        """Sample ranges ``[(begin, end), ...]`` of the chunks that :meth:`slice` returns.

        ``audio`` is (N,) or (channels, N); channels are averaged for the analysis.
        An input of at most ``min_length`` frames' worth of samples is one chunk.
        """
        audio = np.asarray(audio)
        samples = audio.mean(axis=0) if audio.ndim > 1 else audio
        if not np.issubdtype(samples.dtype, np.floating):
            samples = samples.astype(np.float64)
        length = samples.shape[0]
        if length <= self.min_length * self.hop:
            return [(0, length)]
        rms = frame_rms(samples, self.window, self.hop)
        cuts = self.cuts(rms)
        if not cuts:
            return [(0, length)]
        total = rms.shape[0]
        spans = []
        if cuts[0][0] > 0:
            spans.append((0, cuts[0][0]))
        spans += [(left[1], right[0]) for left, right in zip(cuts, cuts[1:])]
        if cuts[-1][1] < total:
            spans.append((cuts[-1][1], total))
        return [(begin * self.hop, min(length, end * self.hop)) for begin, end in spans]

    def slice(self, audio: np.ndarray) -> list[np.ndarray]:
        """Chunks of ``audio`` between its long silences (views, same dtype; (N,) or (channels, N))."""
        audio = np.asarray(audio)
        return [audio[..., begin:end] for begin, end in self.ranges(audio)]
