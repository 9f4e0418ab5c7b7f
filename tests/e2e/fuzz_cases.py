"""Malformed inputs for the fuzz tests: audio files, model files, parameter values and paths.

Each maker writes one bad input into a folder and returns its path; the
tables say which words the error must contain (the file's name or the field,
so the user knows what to fix).  Shared by the CLI and the web API fuzz tests.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

MARKER_NAME = "pwned-marker"  # a hostile pickle tries to create this file


def _wav_header(rate: int, channels: int = 1, bits: int = 16, data_bytes: int = 0, fmt_code: int = 1) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_code, channels, rate, rate * block, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def _wav(rate: int, samples: np.ndarray, *, bits: int = 16, fmt_code: int = 1, channels: int = 1) -> bytes:
    payload = samples.tobytes()
    return _wav_header(rate, channels, bits, len(payload), fmt_code) + payload


def _tone(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")


def _write(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return make


def _directory(name: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / name).mkdir()
        return folder / name

    return make


def _dangling_link(name: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        os.symlink(folder / "nowhere.wav", folder / name)
        return folder / name

    return make


_RNG = np.random.default_rng(7)
_NOISE = _RNG.integers(0, 256, 100_000, dtype=np.uint8).tobytes()
_PNG = b"\x89PNG\r\n\x1a\n" + _NOISE[:2000]
_ZIP = io.BytesIO()
with zipfile.ZipFile(_ZIP, "w") as _z:
    _z.writestr("readme.txt", "not audio")

# name -> maker; the error must name the file (its name is in the path the maker returns)
AUDIO_CASES: dict[str, Callable[[Path], Path]] = {
    "empty": _write("empty.wav", b""),
    "noise_1k": _write("noise1k.wav", _NOISE[:1000]),
    "noise_100k": _write("noise100k.mp3", _NOISE),
    "text": _write("lyrics.wav", b"These are lyrics, not audio.\n" * 50),
    "header_only": _write("header_only.wav", _wav_header(16000)),
    "one_hz_13h": _write("one_hz.wav", _wav_header(1, data_bytes=96_000) + _NOISE[:96_000]),
    "rate_1mhz": _write("rate_1mhz.wav", _wav(1_000_000, _tone(0.5))),
    "rate_4khz": _write("rate_4khz.wav", _wav(4000, _tone(2.0, 4000))),
    "rate_zero": _write("rate_zero.wav", _wav(0, _tone(1.0))),
    "zero_channels": _write("zero_channels.wav", _wav(16000, _tone(1.0), channels=0)),
    "float_nan": _write("nan.wav", _wav(16000, np.full(16000, np.nan, "<f4"), bits=32, fmt_code=3)),
    "float_inf": _write("inf.wav", _wav(16000, np.full(16000, np.inf, "<f4"), bits=32, fmt_code=3)),
    "data_past_end": _write("data_past_end.wav", _wav_header(16000, data_bytes=10**9) + _tone(0.2).tobytes()),
    "png": _write("picture.wav", _PNG),
    "zip_as_mp3": _write("archive.mp3", _ZIP.getvalue()),
    "mp3_garbage": _write("garbage.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00" + _NOISE[:5000]),
    "flac_truncated": _write("cut.flac", b"fLaC\x00\x00\x00\x22" + _NOISE[:20]),
    "ogg_header": _write("head.ogg", b"OggS\x00\x02" + b"\x00" * 20),
    "riff_avi": _write("video.wav", b"RIFF\x24\x00\x00\x00AVI " + _NOISE[:500]),
    "no_fmt_chunk": _write("nofmt.wav", b"RIFF\x24\x00\x00\x00WAVEdata\x00\x10\x00\x00" + _NOISE[:4096]),
    "nul_bytes": _write("zeros.m4a", b"\x00" * 65536),
    "json_as_m4a": _write("data.m4a", b'{"audio": [1, 2, 3]}'),
    "too_short": _write("short.wav", _wav(16000, _tone(0.05))),
    "one_sample": _write("one_sample.wav", _wav(16000, _tone(1 / 16000))),
    "silence": _write("silence.wav", _wav(16000, np.zeros(16000, "<i2"))),
    "odd_name_corrupt": _write('it\'s a "song" 🎵.wav', _NOISE[:3000]),
    "directory": _directory("folder.wav"),
    "dangling_link": _dangling_link("link.wav"),
    "missing": lambda folder: folder / "missing.wav",
}


def _torch_save(obj: object) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _hostile_pickle(folder: Path) -> bytes:
    import pickle

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {folder / MARKER_NAME}",))

    return pickle.dumps(Exploit(), protocol=2)


def _voice_with(good: Path, change: Callable[[dict], None]) -> bytes:
    import torch

    model = torch.load(good, map_location="cpu", weights_only=True)
    change(model)
    return _torch_save(model)


def _nan_weights(model: dict) -> None:
    for tensor in model["weight"].values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
            return


def _wrong_shape(model: dict) -> None:
    name = next(iter(model["weight"]))
    model["weight"][name] = model["weight"][name].flatten()[:3].clone()


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda model: model.__setitem__(key, value)


def _config_item(position: int, value: object) -> Callable[[dict], None]:
    def change(model: dict) -> None:
        model["config"] = list(model["config"])
        model["config"][position] = value

    return change


def model_cases(good_voice: Path) -> dict[str, Callable[[Path], Path]]:
    """Broken voice files (``--voice``): name -> maker.  ``good_voice`` is a tiny working small model."""

    def derived(name: str, change: Callable[[dict], None]) -> Callable[[Path], Path]:
        return lambda folder: _write(name, _voice_with(good_voice, change))(folder)

    def hostile(folder: Path) -> Path:
        return _write("hostile.pth", _hostile_pickle(folder))(folder)

    return {
        "empty_pth": _write("empty.pth", b""),
        "noise_pth": _write("noise.pth", _NOISE[:5000]),
        "text_pth": _write("text.pth", b"weights go here\n"),
        "zip_without_pickle": _write("nopickle.pth", _ZIP.getvalue()),
        "hostile_pickle": hostile,
        "list_pickle": lambda folder: _write("list.pth", _torch_save([1, 2, 3]))(folder),
        "no_weight_key": derived("noweight.pth", lambda m: m.pop("weight")),
        "short_config": derived("shortconfig.pth", _set("config", [1, 2, 3])),
        "rates_zero": derived("sr0.pth", lambda m: (_set("sr", "0k")(m), _config_item(-1, 0)(m))),
        "rates_text": derived("srtext.pth", lambda m: (_set("sr", "fast")(m), _config_item(-1, "fast")(m))),
        "version_v9": derived("v9.pth", _set("version", "v9")),
        "nan_weights": derived("nanweights.pth", _nan_weights),
        "wrong_shape": derived("wrongshape.pth", _wrong_shape),
        "directory_pth": _directory("folder.pth"),
        "missing_pth": lambda folder: folder / "missing.pth",
    }


INDEX_CASES: dict[str, Callable[[Path], Path]] = {
    "empty_index": _write("added_empty.index", b""),
    "noise_index": _write("added_noise.index", _NOISE[:4000]),
    "text_index": _write("added_text.index", b"IVF256,Flat\n"),
    "missing_index": lambda folder: folder / "added_missing.index",
}

# flag -> bad values; the error must name the flag or its field
PARAMETER_CASES: dict[str, tuple[str, ...]] = {
    "--key": ("nan", "inf", "-inf", "100", "-1e9", "abc"),
    "--index-rate": ("nan", "-0.1", "2", "inf"),
    "--filter-radius": ("-1", "99", "1.5"),
    "--rms-mix-rate": ("nan", "3"),
    "--protect": ("nan", "-1", "0.9"),
    "--resample-sr": ("1", "-5", "nan"),
    "--speaker-id": ("-1", "99", "x"),
    "--f0-method": ("bogus",),
    "--noise-scale": ("nan", "-1"),
    "--seed": ("x",),
    "--device": ("tpu",),
    "--format": ("exe",),
}


def field_words(flag: str) -> tuple[str, ...]:
    """Ways a message may name the field of ``flag`` (``--index-rate``: ``index-rate``, ``index_rate``, ``index rate``)."""
    bare = flag.lstrip("-")
    return (bare, bare.replace("-", "_"), bare.replace("-", " "))
