"""The pitch input of a conversion: f0, key shift, smoothing and an optional f0 curve (spec §8.4 step 7)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infer.f0 import PitchModels, coarse_f0, compute_f0, median_filter_f0, shift_f0
from infer.frames import HOP_16K, SR_16K

FRAMES_PER_SECOND = SR_16K // HOP_16K


class F0CurveError(ValueError):
    """An f0 curve file could not be read."""


@dataclass(frozen=True)
class F0Curve:
    """A pitch curve that replaces the detected f0: (time in s, f0 in Hz) points."""

    times: np.ndarray
    hz: np.ndarray

    @classmethod
    def read(cls, path: str | Path) -> F0Curve:
        """Read RVC's f0 file: one ``time_seconds,f0_hz`` pair per line."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise F0CurveError(f"Could not read the f0 curve file '{path}': {exc}") from exc
        rows = []
        for number, line in enumerate(text.strip().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                time_s, hz = (float(value) for value in line.split(","))
            except ValueError as exc:
                raise F0CurveError(
                    f"Line {number} of the f0 curve file '{path}' is not 'seconds,hertz': {line.strip()!r}"
                ) from exc
            rows.append((time_s, hz))
        if not rows:
            raise F0CurveError(f"The f0 curve file '{path}' has no 'seconds,hertz' lines.")
        data = np.asarray(rows, dtype=np.float64)
        order = np.argsort(data[:, 0], kind="stable")
        return cls(data[order, 0], data[order, 1])

    def frames(self, start_frame: int, count: int) -> tuple[int, np.ndarray]:
        """The curve on 10 ms frames ``[start_frame, start_frame + count)`` of the input.

        Returns ``(offset, values)``: ``values`` covers frames ``start_frame +
        offset`` onwards (where the curve is defined), linearly interpolated.
        """
        first = max(int(round(self.times[0] * FRAMES_PER_SECOND)), start_frame)
        last = min(int(round(self.times[-1] * FRAMES_PER_SECOND)) + 1, start_frame + count)
        if last <= first:
            return 0, np.zeros(0)
        frame_numbers = np.arange(first, last)
        return first - start_frame, np.interp(frame_numbers, self.times * FRAMES_PER_SECOND, self.hz)


def detect_f0(
    padded: np.ndarray,
    method: str,
    *,
    filter_radius: int,
    models: PitchModels,
    f0_min: float = 50.0,
    f0_max: float = 1100.0,
) -> np.ndarray:
    """f0 (Hz, float32, ``len(padded) // 160`` frames) of a padded 16 kHz stretch.

    Harvest gets a median filter of radius ``filter_radius`` (RVC's control,
    which RVC applied as a fixed 3-tap filter; 0 = off).
    """
    p_len = padded.shape[0] // HOP_16K
    f0 = compute_f0(padded, method, p_len=p_len, f0_min=f0_min, f0_max=f0_max, models=models)
    if method == "harvest" and filter_radius > 0:
        f0 = median_filter_f0(f0, filter_radius)
    return np.asarray(f0, dtype=np.float32)


def pitch_inputs(
    f0: np.ndarray,
    *,
    key: float,
    curve: F0Curve | None = None,
    first_frame: int = 0,
    lead_frames: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Key shift, then the f0 curve (which RVC applies after the shift), then coarse pitch.

    Frame ``i`` of ``f0`` is input frame ``first_frame - lead_frames + i``
    (``lead_frames`` of padding precede the stretch's first input frame).
    Returns ``(coarse int64, f0 float32)``.
    """
    shifted = np.asarray(shift_f0(f0, key), dtype=np.float32)
    if curve is not None:
        offset, values = curve.frames(first_frame, len(shifted) - lead_frames)
        start = lead_frames + offset
        stop = min(start + len(values), len(shifted))
        shifted[start:stop] = values[: stop - start]
    return coarse_f0(shifted), shifted
