"""RVC Studio's inference library: everything needed to convert a voice.

Public API (documented in docs/api.md)::

    voice = infer.load_voice("weights/alice.pth")          # Voice: .synthesizer, .sample_rate, ...
    encoder = infer.load_content_encoder("assets/hubert/hubert_base.pt")
    feats = encoder.extract(wav16k, voice.version)          # float32 (T, 256|768)
    f0 = infer.compute_f0(wav16k, "rmvpe", rmvpe_path="assets/rmvpe/rmvpe.pt")

    cache = infer.ModelCache()                              # loaded models, shared by conversions
    job = infer.prepare("weights/alice.pth", cache, infer.ConvertParams(key=3), index="logs/alice/added_x.index")
    infer.convert_file(job, "song.mp3", "out/song.flac")

Names are imported lazily so that ``import infer`` stays cheap.
"""

from __future__ import annotations

import os

from infer.lazy import lazy_exports

# oneDNN (PyTorch's CPU kernels) caches a compiled kernel per input shape, 1024 by default, each
# holding its buffers: converting segments of ever-different lengths then grows memory without
# bound (measured: 2.1 GB after one minute of audio, and rising).  A small cache keeps memory flat
# and is faster here; set the variable yourself to override it.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

_LAZY = {
    "load_voice": "infer.voice",
    "Voice": "infer.voice",
    "load_content_encoder": "infer.content",
    "ContentEncoder": "infer.content",
    "compute_f0": "infer.f0",
    "coarse_f0": "infer.f0",
    "PitchModels": "infer.f0",
    "F0_METHODS": "infer.f0",
    "ModelCache": "infer.cache",
    "ConvertParams": "infer.params",
    "ConversionResult": "infer.params",
    "prepare": "infer.convert",
    "convert_array": "infer.convert",
    "convert_file": "infer.convert",
    "ConversionError": "infer.convert",
    "AudioFileError": "infer.audio",
    "FeatureIndex": "infer.retrieval",
    "ModelFileError": "infer.safe_load",
    "UnsafeModelFileError": "infer.safe_load",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
