"""The pipeline's pieces against direct transcriptions of the reference's numpy/torch code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from infer.envelope import EnvelopeStream, input_envelope
from infer.frames import content_frames, pitch_frames, synth_frames
from infer.longform import output_length
from infer.pipeline import ChunkSizes, change_rms, frame_rms, split_points


def _reference_split_points(audio, sizes):
    """RVC's loop, transcribed literally (pipeline.py, 20240604)."""
    window = 160
    audio_pad = np.pad(audio, (window // 2, window // 2), mode="reflect")
    opt_ts = []
    if audio_pad.shape[0] > sizes.t_max:
        audio_sum = np.zeros_like(audio)
        for i in range(window):
            audio_sum += audio_pad[i : i - window]
        for t in range(sizes.t_center, audio.shape[0], sizes.t_center):
            seg = np.abs(audio_sum[t - sizes.t_query : t + sizes.t_query])
            opt_ts.append(t - sizes.t_query + np.where(seg == seg.min())[0][0])
    return opt_ts


@pytest.mark.parametrize("seconds", [3, 5.9, 6.1, 11, 23])
def test_split_points_match_reference(seconds):
    sizes = ChunkSizes(x_pad=1, x_query=1, x_center=3, x_max=6)
    rng = np.random.default_rng(int(seconds * 10))
    audio = rng.standard_normal(int(seconds * 16000)) * 0.1
    audio[30000:36000] = 0.0  # digital silence: exact ties must resolve like the reference
    audio[70000:80000] *= 1e-3
    assert split_points(audio, sizes) == _reference_split_points(audio, sizes)


def test_chunk_sizes_follow_the_device():
    assert ChunkSizes.for_device(torch.device("cpu"), half=False) == ChunkSizes(1, 6, 38, 41)
    assert ChunkSizes.for_device(torch.device("cuda"), half=True, memory_gb=24) == ChunkSizes(3, 10, 60, 65)
    assert ChunkSizes.for_device(torch.device("cuda"), half=True, memory_gb=4) == ChunkSizes(1, 5, 30, 32)
    smaller = ChunkSizes(3, 10, 60, 65).smaller()
    assert smaller.x_center < 60 and smaller.x_max > smaller.x_center


def test_frame_arithmetic():
    assert content_frames(399) == 0 and content_frames(400) == 1 and content_frames(16000) == 49
    assert pitch_frames(16000) == 100
    assert synth_frames(16000) == 98  # 2 × 49 content frames < 100 pitch frames
    assert synth_frames(16160 + 2 * 16000) == min(2 * content_frames(48160), 301)


def _reference_rms(y, frame_length, hop_length):
    pad = frame_length // 2
    y = np.pad(y, (pad, pad))
    n = 1 + (len(y) - frame_length) // hop_length
    frames = np.stack([y[i * hop_length : i * hop_length + frame_length] for i in range(n)])
    return np.sqrt(np.mean(np.abs(frames) ** 2, axis=1))


def test_frame_rms_matches_librosa_definition():
    rng = np.random.default_rng(1)
    y = rng.standard_normal(40000)
    assert np.allclose(frame_rms(y, 16000, 8000), _reference_rms(y, 16000, 8000), rtol=1e-10)


def _reference_change_rms(data1, sr1, data2, sr2, rate):
    rms1 = torch.from_numpy(_reference_rms(data1, sr1 // 2 * 2, sr1 // 2)[None])
    rms2 = torch.from_numpy(_reference_rms(data2, sr2 // 2 * 2, sr2 // 2)[None].astype(np.float32))
    rms1 = F.interpolate(rms1.unsqueeze(0), size=data2.shape[0], mode="linear").squeeze()
    rms2 = F.interpolate(rms2.unsqueeze(0), size=data2.shape[0], mode="linear").squeeze()
    rms2 = torch.max(rms2, torch.zeros_like(rms2) + 1e-6)
    data2 = data2.copy()
    data2 *= (torch.pow(rms1, torch.tensor(1 - rate)) * torch.pow(rms2, torch.tensor(rate - 1))).numpy()
    return data2


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.8])
def test_change_rms_matches_reference(rate):
    rng = np.random.default_rng(2)
    source = rng.standard_normal(16000 * 7) * np.linspace(0.01, 0.5, 16000 * 7)
    output = (rng.standard_normal(40000 * 7 - 900) * 0.2).astype(np.float32)
    expected = _reference_change_rms(source, 16000, output, 40000, rate)
    assert np.allclose(change_rms(source, output, 40000, rate), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("chunk", [997, 40000, 123457])
def test_envelope_stream_equals_whole_mix(chunk):
    rng = np.random.default_rng(3)
    source = rng.standard_normal(16000 * 9) * np.linspace(0.02, 0.4, 16000 * 9)
    output = (rng.standard_normal(40000 * 9 - 777) * 0.3).astype(np.float32)
    expected = change_rms(source, output, 40000, 0.25)
    stream = EnvelopeStream(input_envelope(lambda a, b: source[a:b], source.shape[0]), 40000, output.shape[0], 0.25)
    pieces = [
        stream.push(output[i : i + chunk], last=i + chunk >= output.shape[0]) for i in range(0, len(output), chunk)
    ]
    got = np.concatenate(pieces)
    assert got.shape == expected.shape
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_output_length_formula():
    sizes = ChunkSizes(1, 1, 3, 6)
    # segments of 3 s cut at multiples of 160 plus the final piece
    cuts, length = [48000, 96160], 150000
    expected = 0
    bounds = [0, *cuts]
    for a, b in zip(bounds[:-1], bounds[1:]):
        n = b - a + 2 * sizes.t_pad + 160
        expected += synth_frames(n) * 400 - 2 * 40000
    expected += synth_frames(length + 2 * sizes.t_pad - cuts[-1]) * 400 - 2 * 40000
    assert output_length(cuts, length, sizes.t_pad, 40000, sizes.x_pad) == expected
