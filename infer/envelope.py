"""RVC's loudness-envelope mix as a stream, for outputs too long to hold in memory.

:func:`infer.pipeline.change_rms` mixes a whole output at once.  Here the same
envelopes (RMS over 1 s frames every 0.5 s, zero-padded at the ends) and the
same linear stretch of the envelopes over the output (torch's
``interpolate(mode="linear")`` index rule) are computed while the output
arrives, holding back only the ~1 s of samples whose envelope needs later
output.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from infer.frames import SR_16K

_READ = 30 * SR_16K


def _rms_from_hop_energies(energies: np.ndarray, hop: int) -> np.ndarray:
    """Frame c spans hops c-1 and c (frame length 2·hop, centred, zero padding)."""
    padded = np.concatenate(([0.0], energies))
    return np.sqrt((padded[:-1] + padded[1:]) / (2 * hop))


def input_envelope(read: Callable[[int, int], np.ndarray], length: int) -> np.ndarray:
    """RMS envelope of a 16 kHz signal read in pieces: ``1 + length // 8000`` values (float64)."""
    hop = SR_16K // 2
    n_frames = 1 + length // hop
    energies = np.zeros(n_frames, dtype=np.float64)
    for start in range(0, length, _READ):
        chunk = read(start, min(start + _READ, length)).astype(np.float64)
        squares = np.square(chunk)
        for offset in range(0, chunk.shape[0], hop):
            energies[(start + offset) // hop] = squares[offset : offset + hop].sum()
    return _rms_from_hop_energies(energies, hop)


def _interpolate(values: np.ndarray, positions: np.ndarray, total: int) -> np.ndarray:
    """torch ``interpolate(values, size=total, mode="linear")`` evaluated at output ``positions``."""
    scale = values.shape[0] / total
    source = np.maximum((positions + 0.5) * scale - 0.5, 0.0)
    low = np.minimum(source.astype(np.int64), values.shape[0] - 1)
    high = np.minimum(low + 1, values.shape[0] - 1)
    weight = source - low
    return (1 - weight) * values[low] + weight * values[high]


class EnvelopeStream:
    """Apply ``out · rms_in^(1-rate) · rms_out^(rate-1)`` to an output arriving in pieces.

    ``rms_in``: the input envelope (:func:`input_envelope`); ``total``: the
    final output length in samples, known in advance.
    """

    def __init__(self, rms_in: np.ndarray, out_rate: int, total: int, rate: float) -> None:
        self.rms_in, self.total, self.rate = rms_in, total, rate
        self.hop = out_rate // 2
        self.n_out_frames = 1 + total // self.hop
        self.energies: list[float] = []
        self.pending = np.zeros(0, dtype=np.float64)  # received, not yet emitted
        self.emitted = 0
        self.received = 0
        self.partial = np.zeros(0, dtype=np.float64)  # samples of the unfinished hop

    def push(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        """Feed output samples; returns the mixed samples that can be finished now (float32)."""
        samples = np.asarray(samples, dtype=np.float64)
        self.received += samples.shape[0]
        self.pending = np.concatenate([self.pending, samples])
        self.partial = np.concatenate([self.partial, samples])
        while self.partial.shape[0] >= self.hop:
            self.energies.append(float(np.square(self.partial[: self.hop]).sum()))
            self.partial = self.partial[self.hop :]
        if last:
            if self.partial.shape[0]:
                self.energies.append(float(np.square(self.partial).sum()))
                self.partial = self.partial[:0]
            while len(self.energies) < self.n_out_frames:
                self.energies.append(0.0)
        rms_out = _rms_from_hop_energies(np.asarray(self.energies), self.hop)
        ready = self.received if last else self._ready_until(rms_out.shape[0])
        count = max(ready - self.emitted, 0)
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        positions = np.arange(self.emitted, self.emitted + count, dtype=np.float64)
        full_out = np.zeros(self.n_out_frames)
        full_out[: rms_out.shape[0]] = rms_out[: self.n_out_frames]
        gain_in = _interpolate(self.rms_in, positions, self.total) ** (1 - self.rate)
        gain_out = np.maximum(_interpolate(full_out, positions, self.total), 1e-6) ** (self.rate - 1)
        mixed = self.pending[:count] * gain_in * gain_out
        self.pending = self.pending[count:]
        self.emitted += count
        return mixed.astype(np.float32)

    def _ready_until(self, known_frames: int) -> int:
        """First output sample whose envelope still needs frames beyond ``known_frames``.

        Frame c is complete once hop c has arrived; sample p needs frame
        ``floor(src(p)) + 1`` where ``src(p) = (p + 0.5)·n/total − 0.5``.
        """
        complete = min(known_frames, len(self.energies))  # frames 0..complete-1 are final
        if complete >= self.n_out_frames:
            return self.received
        scale = self.n_out_frames / self.total
        # need floor(src) + 1 <= complete - 1  <=>  src < complete - 1
        limit = ((complete - 1) + 0.5) / scale - 0.5
        return int(min(max(np.floor(limit), 0), self.received))
