"""The silence slicer against a frame-by-frame transcription of spec §2 step 4."""

from __future__ import annotations

import numpy as np
import pytest

from train.slicer import Slicer, frame_rms


def spec_slice_ranges(
    audio, sr, threshold_db=-42.0, min_length_ms=1500, min_interval_ms=400, hop_ms=15, max_kept_ms=500, fixed_guard=True
):
    """Spec §2 step 4, written out frame by frame; returns the chunks' sample ranges.

    ``fixed_guard=False`` reproduces RVC's guard (samples compared with frames).
    """
    hop = round(sr * hop_ms / 1000)
    interval = sr * min_interval_ms / 1000
    win = min(round(interval), 4 * hop)
    min_length = round(sr * min_length_ms / 1000 / hop)
    min_interval = round(interval / hop)
    max_kept = round(sr * max_kept_ms / 1000 / hop)
    threshold = 10 ** (threshold_db / 20)
    n = len(audio)
    if n <= (min_length * hop if fixed_guard else min_length):
        return [(0, n)]
    padded = np.concatenate([np.zeros(win // 2), audio, np.zeros(win // 2)])
    frames = 1 + (len(padded) - win) // hop
    rms = np.array([np.sqrt(np.mean(padded[j * hop : j * hop + win] ** 2)) for j in range(frames)])

    def quietest(lo, hi):  # index of the quietest frame in [lo, hi]
        return lo + int(np.argmin(rms[lo : hi + 1]))

    tags, run_start, clip_start = [], None, 0
    for i in range(frames):
        if rms[i] < threshold:
            if run_start is None:
                run_start = i
            continue
        if run_start is None:
            continue
        s = run_start
        run_start = None
        leading = s == 0 and i > max_kept
        middle = i - s >= min_interval and i - clip_start >= min_length
        if not (leading or middle):
            continue
        if i - s <= max_kept:
            p = quietest(s, i)
            tags.append((0, p) if s == 0 else (p, p))
            clip_start = p
        elif i - s <= 2 * max_kept:
            p = quietest(i - max_kept, s + max_kept)
            p_l, p_r = quietest(s, s + max_kept), quietest(i - max_kept, i)
            tags.append((0, p_r) if s == 0 else (min(p_l, p), max(p_r, p)))
            clip_start = p_r if s == 0 else max(p_r, p)
        else:
            p_l, p_r = quietest(s, s + max_kept), quietest(i - max_kept, i)
            tags.append((0, p_r) if s == 0 else (p_l, p_r))
            clip_start = p_r
    if run_start is not None and frames - run_start >= min_interval:
        tags.append((quietest(run_start, min(frames, run_start + max_kept)), frames + 1))
    if not tags:
        return [(0, n)]
    spans = ([(0, tags[0][0])] if tags[0][0] > 0 else []) + [(a[1], b[0]) for a, b in zip(tags, tags[1:])]
    if tags[-1][1] < frames:
        spans.append((tags[-1][1], frames))
    return [(a * hop, min(n, b * hop)) for a, b in spans]


def tone(seconds, sr, freq=220.0, amp=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    return amp * np.sin(2 * np.pi * freq * t)


def layout(sr, parts, seed=0):
    """Concatenate ("tone"|"quiet", seconds) parts; quiet parts hold -80 dB noise so frames differ."""
    rng = np.random.default_rng(seed)
    pieces = [tone(sec, sr) if kind == "tone" else rng.normal(0, 1e-4, int(round(sec * sr))) for kind, sec in parts]
    return np.concatenate(pieces)


def assert_same_as_spec(audio, sr, **params):
    slicer = Slicer(
        sr,
        **{k: v for k, v in params.items() if k != "max_kept_ms"},
        **({"max_silence_kept_ms": params["max_kept_ms"]} if "max_kept_ms" in params else {}),
    )
    expected = spec_slice_ranges(audio, sr, **params)
    assert slicer.ranges(audio) == expected
    chunks = slicer.slice(audio)
    assert [c.shape[0] for c in chunks] == [b - a for a, b in expected]
    for chunk, (a, b) in zip(chunks, expected):
        np.testing.assert_array_equal(chunk, audio[a:b])
    return expected


@pytest.mark.parametrize("sr", [32000, 40000, 48000])
def test_derived_frame_values(sr):
    slicer = Slicer(sr)
    assert slicer.hop == sr * 15 // 1000
    assert slicer.window == 4 * slicer.hop
    assert (slicer.min_length, slicer.min_interval, slicer.max_silence_kept) == (100, 27, 33)
    assert slicer.threshold == pytest.approx(0.00794, abs=1e-5)


def test_frame_rms_is_librosa_style():
    rng = np.random.default_rng(1)
    x = rng.normal(size=12345)
    window, hop = 2400, 600
    padded = np.pad(x, window // 2)
    expected = [np.sqrt(np.mean(padded[j * hop : j * hop + window] ** 2)) for j in range(1 + 12345 // hop)]
    np.testing.assert_allclose(frame_rms(x, window, hop), expected, rtol=1e-12)


@pytest.mark.parametrize("sr", [32000, 40000, 48000])
def test_every_branch_matches_spec(sr):
    # 1.0 s leading silence, then gaps of 0.3 s (under min_interval: kept), 0.5 s (<= max kept),
    # 0.8 s (between max kept and twice it), 1.5 s (longer), and 2 s of trailing silence.
    audio = layout(
        sr,
        [
            ("quiet", 1.0),
            ("tone", 1.7),
            ("quiet", 0.3),
            ("tone", 1.0),
            ("quiet", 0.5),
            ("tone", 1.8),
            ("quiet", 0.8),
            ("tone", 1.6),
            ("quiet", 1.5),
            ("tone", 2.0),
            ("quiet", 2.0),
        ],
    )
    ranges = assert_same_as_spec(audio, sr)
    slicer = Slicer(sr)
    rms = frame_rms(audio, slicer.window, slicer.hop)
    cuts = slicer.cuts(rms)
    assert len(cuts) == 5 and len(ranges) == 4
    assert cuts[0][0] == 0 and cuts[0][1] > 0  # leading silence, 0.5 s of it kept
    assert cuts[1][0] == cuts[1][1]  # a short gap is cut at its quietest frame
    assert 0 <= cuts[2][1] - cuts[2][0] <= 2 * slicer.max_silence_kept  # a middle gap: part of it removed
    long_gap = round(1.5 * sr / slicer.hop)
    assert long_gap - 2 * slicer.max_silence_kept - 4 <= cuts[3][1] - cuts[3][0] <= long_gap  # at most 2 x 0.5 s kept
    assert cuts[4][1] == len(rms) + 1  # trailing silence
    assert ranges[-1][1] < len(audio)


@pytest.mark.parametrize("seed", range(8))
def test_random_bursts_match_spec(seed):
    rng = np.random.default_rng(seed)
    sr = int(rng.choice([32000, 40000, 48000]))
    parts = []
    for _ in range(12):
        parts.append(("quiet", float(rng.uniform(0.05, 1.6))))
        parts.append(("tone", float(rng.uniform(0.2, 2.5))))
    audio = layout(sr, parts, seed) * rng.uniform(0.2, 1.0)
    audio[rng.integers(0, len(audio), 50)] += rng.normal(0, 0.05, 50)  # clicks inside quiet parts too
    assert_same_as_spec(audio, sr)


def test_other_parameters_match_spec():
    audio = layout(44100, [("quiet", 0.3), ("tone", 0.8), ("quiet", 0.35), ("tone", 0.9), ("quiet", 0.6)])
    params = dict(threshold_db=-30.0, min_length_ms=500, min_interval_ms=200, hop_ms=10, max_kept_ms=100)
    assert len(assert_same_as_spec(audio, 44100, **params)) == 2


def test_fading_silences_are_cut_at_the_edge_of_the_kept_margin():
    sr = 40000
    rng = np.random.default_rng(3)
    fade_in = rng.normal(0, 1, sr) * np.geomspace(1e-6, 1e-3, sr)
    fade_out = rng.normal(0, 1, 2 * sr) * np.geomspace(1e-3, 1e-6, 2 * sr)  # quieter and quieter
    audio = np.concatenate([fade_in, tone(3, sr), fade_out])
    slicer = Slicer(sr)
    rms = frame_rms(audio, slicer.window, slicer.hop)
    loud = np.flatnonzero(rms >= slicer.threshold)
    keep = slicer.max_silence_kept
    # The quietest frames of each kept margin are its far ends.
    assert slicer.cuts(rms) == [(0, loud[0] - keep), (loud[-1] + 1 + keep, len(rms) + 1)]
    assert_same_as_spec(audio, sr)


def test_short_input_guard_compares_samples_with_samples():
    sr = 40000
    slicer = Slicer(sr)
    limit = slicer.min_length * slicer.hop  # 1.5 s
    short = layout(sr, [("quiet", 0.9), ("tone", 0.6)])
    assert len(short) == limit
    assert slicer.ranges(short) == [(0, limit)]  # returned whole
    # RVC's guard compares samples with frames and does not fire: the leading silence would be cut.
    assert spec_slice_ranges(short, sr, fixed_guard=False)[0][0] > 0
    longer = np.concatenate([short, tone(1 / sr, sr)])
    assert slicer.ranges(longer)[0][0] > 0  # one sample over the limit: sliced as usual
    assert_same_as_spec(longer, sr)


def test_silence_and_sound_only():
    sr = 40000
    assert Slicer(sr).slice(np.zeros(5 * sr)) == []
    loud = tone(5, sr)
    (chunk,) = Slicer(sr).slice(loud)
    assert chunk.shape == loud.shape


def test_float32_and_multichannel():
    sr = 32000
    mono = layout(sr, [("tone", 2.0), ("quiet", 1.2), ("tone", 2.0)])
    assert_same_as_spec(mono.astype(np.float32), sr)
    stereo = np.stack([mono, 0.5 * mono])
    chunks = Slicer(sr).slice(stereo)
    expected = spec_slice_ranges(stereo.mean(axis=0), sr)
    assert len(chunks) == 2
    assert [c.shape for c in chunks] == [(2, b - a) for a, b in expected]


def test_bad_parameters():
    with pytest.raises(ValueError, match="min_length_ms >= min_interval_ms"):
        Slicer(40000, min_length_ms=300, min_interval_ms=400)
    with pytest.raises(ValueError, match="max_silence_kept_ms"):
        Slicer(40000, hop_ms=20, max_silence_kept_ms=10)
    with pytest.raises(ValueError, match="sample_rate"):
        Slicer(0)
