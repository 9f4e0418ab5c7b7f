"""Frame arithmetic shared by the conversion pipeline (one place, tested on its own).

Rates: the content encoder and pitch work on 16 kHz audio; pitch frames are
10 ms (hop 160), content frames 20 ms (hop 320, window 400) and are repeated
twice to reach the synthesizer's 100 frames/s; the synthesizer emits
``sample_rate / 100`` samples per frame.
"""

from __future__ import annotations

SR_16K = 16000
HOP_16K = 160  # samples per pitch / synthesizer frame at 16 kHz
CONTENT_HOP = 320
CONTENT_WINDOW = 400


def pitch_frames(num_samples: int) -> int:
    """10 ms frames in ``num_samples`` at 16 kHz (RVC's ``p_len``)."""
    return num_samples // HOP_16K


def content_frames(num_samples: int) -> int:
    """HuBERT frames for ``num_samples`` at 16 kHz: ``(N - 400) // 320 + 1`` (0 if shorter than 400)."""
    return (num_samples - CONTENT_WINDOW) // CONTENT_HOP + 1 if num_samples >= CONTENT_WINDOW else 0


def synth_frames(num_samples: int) -> int:
    """Frames the synthesizer gets for a 16 kHz segment: the content frames ×2, at most ``pitch_frames``."""
    return min(2 * content_frames(num_samples), pitch_frames(num_samples))


def output_samples(num_frames: int, sample_rate: int) -> int:
    """Samples the synthesizer writes for ``num_frames`` at ``sample_rate``."""
    return num_frames * (sample_rate // 100)
