"""Long inputs: memory stays flat, and a GPU out-of-memory retries with smaller pieces."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch

from infer.convert import ConversionError, convert_array, prepare
from infer.params import ConvertParams
from infer.pipeline import ChunkSizes
from tests.helpers import installation  # noqa: F401  (fixture)

_RSS_PER_BLOCK = textwrap.dedent(
    """
    import json, sys
    from infer.cache import ModelCache
    from infer.convert import convert_file, prepare
    from infer.params import ConvertParams
    from infer.pipeline import ChunkSizes

    def rss_mb():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))

    hubert, rmvpe, voice, source, output = sys.argv[1:6]
    cache = ModelCache(hubert_path=hubert, rmvpe_path=rmvpe, device="cpu")
    job = prepare(voice, cache, ConvertParams(f0_method="dio", index_rate=0, seed=0), sizes=ChunkSizes(1, 2, 8, 10))
    samples = []
    convert_file(job, source, output, max_block_seconds=20, overwrite=True,
                 progress=lambda fraction, message: samples.append(rss_mb()) if message.startswith("converting") else None)
    print(json.dumps(samples))
    """
)


def _tone(seconds: float, path) -> None:
    t = np.arange(int(seconds * 16000)) / 16000
    f = 140 + 40 * np.sin(2 * np.pi * 0.25 * t)
    audio = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / 16000) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    audio += 1e-3 * np.random.default_rng(0).standard_normal(t.size)
    sf.write(path, audio.astype(np.float32), 16000, subtype="PCM_16")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memory_does_not_grow_with_input_length(installation, tmp_path):  # noqa: F811
    source = tmp_path / "long.wav"
    _tone(300, source)
    args = [
        str(installation.hubert),
        str(installation.rmvpe),
        str(installation.voices["alice"]),
        str(source),
        str(tmp_path / "out.wav"),
    ]
    done = subprocess.run([sys.executable, "-c", _RSS_PER_BLOCK, *args], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(rss) >= 12  # 300 s in blocks of 16 s
    first, second = rss[: len(rss) // 2], rss[len(rss) // 2 :]
    # After the first blocks warm the allocators up, the resident size must stay put: the second half of
    # the input may not cost more memory than the first (a whole-input run would add ~10 MB per block here).
    assert max(second) - max(first) < 40, f"RSS per block (MiB): {rss}"
    assert sf.info(tmp_path / "out.wav").duration == pytest.approx(300, abs=0.5)


def _speech_like(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    f = 150 + 30 * np.sin(2 * np.pi * 0.3 * t)
    return (0.3 * np.sin(2 * np.pi * np.cumsum(f) / 16000) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.9 * t))).astype(
        np.float32
    )


def test_out_of_memory_retries_with_smaller_pieces(installation, monkeypatch):  # noqa: F811
    cache = installation.cache()
    job = prepare(
        installation.voices["alice"],
        cache,
        ConvertParams(f0_method="dio", index_rate=0, seed=1),
        sizes=ChunkSizes(1, 2, 8, 10),
    )
    synth = job.voice.synthesizer
    real_infer = synth.infer
    frames_seen = []

    def limited(phone, *args, **kwargs):
        frames_seen.append(phone.shape[1])
        if phone.shape[1] > 700:  # pretend anything longer than ~7 s does not fit on the GPU
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_infer(phone, *args, **kwargs)

    monkeypatch.setattr(synth, "infer", limited)
    audio = _speech_like(20)
    result = convert_array(job, audio)
    assert max(frames_seen) > 700  # the first try failed ...
    assert result.audio.shape[0] == pytest.approx(20 * 40000, rel=0.02)  # ... and smaller pieces gave everything
    assert np.abs(result.audio).max() > 0

    def always(phone, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(synth, "infer", always)
    with pytest.raises(ConversionError, match="Ran out of GPU memory"):
        convert_array(job, audio)
