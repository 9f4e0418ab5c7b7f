"""Full-size random models and a 30-second input for the conversion benchmark.

Everything is made here, with fixed seeds, and kept in a cache folder so that
later runs reuse it: a v2 40 kHz pitch voice in RVC's small-model format, a
HuBERT with hubert_base's widths in fairseq format, an RMVPE with the real
file's widths, a FAISS index built the way RVC's "Train feature index" builds
it, and the input as a 44.1 kHz mono 16-bit wav (so decoding includes the
resampling to 16 kHz that real inputs need).  The weights are random: the
timings are those of the real network sizes, the output is not speech.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import soundfile
import soxr
import torch

from infer.checkpoints import make_small_model, write_small_model
from infer.models.config import preset
from infer.models.synthesizer import Synthesizer
from infer.testing.hubert import save_tiny_hubert
from infer.testing.rmvpe import save_tiny_rmvpe
from infer.testing.synth import randomize_parameters

INPUT_SECONDS = 30.0
INPUT_RATE = 44100
INDEX_VECTORS = 10_000
FEATURE_DIM = 768  # v2 content features
SEED = 1234
SPEECH_TEXT = (
    "When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow. "
    "The rainbow is a division of white light into many beautiful colors. "
    "These take the shape of a long round arch, with its path high above, "
    "and its two ends apparently beyond the horizon."
)


@dataclass(frozen=True)
class BenchAssets:
    """Paths of the benchmark's models and input; ``input_kind`` is "espeak-ng" or "synthetic"."""

    voice: Path
    hubert: Path
    rmvpe: Path
    index: Path
    input_wav: Path
    input_kind: str


def build_assets(cache_dir: Path, *, rebuild: bool = False, log=print) -> BenchAssets:
    """Make whatever is missing under ``cache_dir`` (everything with ``rebuild``) and return the paths."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    voice = cache_dir / "voice_v2_40k.pth"
    hubert = cache_dir / "hubert_base_random.pt"
    rmvpe = cache_dir / "rmvpe_random.pt"
    index = cache_dir / f"added_IVF{ivf_lists(INDEX_VECTORS)}_Flat_nprobe_1_bench_v2.index"
    input_wav = cache_dir / "input_30s.wav"
    kind_file = cache_dir / "input_kind.txt"
    steps = (
        (voice, "voice (v2 40k, f0)", write_voice),
        (hubert, "HuBERT (hubert_base widths)", write_hubert),
        (rmvpe, "RMVPE (full widths)", write_rmvpe),
        (index, f"FAISS index ({INDEX_VECTORS} x {FEATURE_DIM})", write_index),
    )
    for path, what, write in steps:
        if rebuild or not path.is_file():
            log(f"making {what}: {path}")
            write(path)
    if rebuild or not input_wav.is_file() or not kind_file.is_file():
        log(f"making the {INPUT_SECONDS:g} s input: {input_wav}")
        kind_file.write_text(write_input(input_wav), encoding="utf-8")
    return BenchAssets(voice, hubert, rmvpe, index, input_wav, kind_file.read_text(encoding="utf-8").strip())


def write_voice(path: Path) -> None:
    """A full-size v2 40 kHz pitch voice with random, non-trivial weights (RVC's small-model format)."""
    cfg = preset("v2", 40000, use_f0=True)
    model = Synthesizer.from_config(cfg, with_posterior=False)
    randomize_parameters(model, torch.Generator().manual_seed(SEED))
    small = make_small_model(model.state_dict(), cfg, "v2", info="benchmark (random weights)")
    write_small_model(small, path)


def write_hubert(path: Path) -> None:
    """A fairseq-format HuBERT with hubert_base's widths (conv 512, embed 768, ffn 3072, 12 heads, final 256)."""
    save_tiny_hubert(path, seed=SEED, embed_dim=768, final_dim=256, conv_dim=512, ffn_dim=3072, heads=12)


def write_rmvpe(path: Path) -> None:
    """An RMVPE state dict with the widths of RVC's ``rmvpe.pt`` (first U-Net stage 16 channels)."""
    save_tiny_rmvpe(path, seed=SEED, en_out_channels=16)


def ivf_lists(n_vectors: int) -> int:
    """RVC's IVF list count: ``min(16·sqrt(N), N // 39)``."""
    return min(int(16 * np.sqrt(n_vectors)), n_vectors // 39)


def write_index(path: Path) -> None:
    """An ``IVF<n>,Flat`` index with nprobe 1 over random 768-d vectors, trained and filled as RVC does."""
    rng = np.random.default_rng(SEED)
    vectors = rng.standard_normal((INDEX_VECTORS, FEATURE_DIM), dtype=np.float32)
    index = faiss.index_factory(FEATURE_DIM, f"IVF{ivf_lists(INDEX_VECTORS)},Flat")
    faiss.extract_index_ivf(index).nprobe = 1
    index.train(vectors)
    for start in range(0, INDEX_VECTORS, 8192):  # RVC adds in batches of 8192
        index.add(vectors[start : start + 8192])
    faiss.write_index(index, str(path))


def write_input(path: Path) -> str:
    """Write the input wav; returns how it was made ("espeak-ng" or "synthetic")."""
    speech = espeak_speech(SPEECH_TEXT)
    kind = "espeak-ng" if speech is not None else "synthetic"
    audio = speech if speech is not None else synthetic_voice(INPUT_SECONDS, INPUT_RATE)
    soundfile.write(path, audio, INPUT_RATE, subtype="PCM_16")
    return kind


def espeak_speech(text: str) -> np.ndarray | None:
    """``text`` spoken by espeak-ng, repeated to :data:`INPUT_SECONDS` at :data:`INPUT_RATE`; None without espeak-ng."""
    program = shutil.which("espeak-ng")
    if program is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        completed = subprocess.run([program, "-s", "150", "-w", str(wav), text], capture_output=True, check=False)
        if completed.returncode != 0 or not wav.is_file():
            return None
        once, rate = soundfile.read(wav, dtype="float32")
    once = soxr.resample(once, rate, INPUT_RATE).astype(np.float32)
    pause = np.zeros(int(0.4 * INPUT_RATE), np.float32)
    total = int(INPUT_SECONDS * INPUT_RATE)
    repeats = int(np.ceil(total / (once.shape[0] + pause.shape[0])))
    audio = np.tile(np.concatenate([once, pause]), repeats)[:total]
    return 0.5 * audio / max(float(np.abs(audio).max()), 1e-6)


def synthetic_voice(seconds: float, rate: int) -> np.ndarray:
    """A speech-like harmonic signal: 20 harmonics, f0 gliding 90–260 Hz, syllable envelope, pauses."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 150 + 60 * np.sin(2 * np.pi * 0.23 * t) + 25 * np.sin(2 * np.pi * 1.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 21))
    syllables = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None) ** 0.5
    phrases = (np.sin(2 * np.pi * 0.12 * t) > -0.6).astype(np.float64)
    noise = np.random.default_rng(SEED).standard_normal(t.shape) * 0.01
    audio = voiced * syllables * phrases + noise
    return (0.5 * audio / np.abs(audio).max()).astype(np.float32)
