"""Checkpoint tools: merge voices, show and edit their info, extract voices from G_ checkpoints,
voice bundles (zip with model, index and voice.json), and ONNX export.

Every function takes paths, returns a typed result, accepts an optional
``progress(fraction, message)`` when it can take long, and raises a
``ValueError`` subclass whose message names the file and says what to do::

    from infer import ckpt
    ckpt.merge_voices("weights/a.pth", "weights/b.pth", 0.6, "ab")          # -> SavedVoice (weights/ab.pth)
    ckpt.voice_info("weights/a.pth").text()
    ckpt.set_voice_info("weights/a.pth", "new info")                         # in place
    ckpt.extract_voice("logs/alice/G_2333333.pth")                           # -> weights/alice_e<epoch>.pth
    ckpt.make_bundle("weights/alice.pth")                                    # -> weights/alice.zip
    ckpt.import_bundle("alice.zip")                                          # -> ImportedVoice
    ckpt.export_onnx("weights/alice.pth")                                    # -> OnnxExport (weights/alice.onnx)

Names are imported lazily so that ``import infer.ckpt`` stays cheap.
"""

from __future__ import annotations

from infer.lazy import lazy_exports

_LAZY = {
    "CkptError": "infer.ckpt.common",
    "OutputExistsError": "infer.ckpt.common",
    "SavedVoice": "infer.ckpt.common",
    "merge_voices": "infer.ckpt.merge",
    "merge_small_models": "infer.ckpt.merge",
    "IncompatibleVoicesError": "infer.ckpt.merge",
    "voice_info": "infer.ckpt.info",
    "VoiceInfo": "infer.ckpt.info",
    "set_voice_info": "infer.ckpt.info",
    "extract_small_model": "infer.ckpt.extract",
    "extract_voice": "infer.ckpt.extract",
    "find_experiment_settings": "infer.ckpt.extract",
    "ExperimentSettings": "infer.ckpt.extract",
    "config_from_weights": "infer.ckpt.extract",
    "make_bundle": "infer.ckpt.bundle",
    "BundleResult": "infer.ckpt.bundle",
    "read_voice_manifest": "infer.ckpt.bundle",
    "import_bundle": "infer.ckpt.bundle_import",
    "ImportedVoice": "infer.ckpt.bundle_import",
    "FetchOptions": "infer.ckpt.bundle_import",
    "VoiceExistsError": "infer.ckpt.bundle_import",
    "UnsafeZipError": "infer.ckpt.zipsafe",
    "export_onnx": "infer.ckpt.onnx_export",
    "OnnxExport": "infer.ckpt.onnx_export",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
