"""Builders for the checkpoint-tool tests: tiny G_ checkpoints and experiments, zips (hostile ones too)."""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from infer.checkpoints import TrainCheckpoint, write_checkpoint
from infer.testing.synth import tiny_synthesizer

TINY_DIM = 32  # content width of the tiny voices (not 256/768, so the weights alone cannot tell the version)


def save_tiny_generator(
    folder: Path,
    *,
    version: str = "v2",
    sample_rate: int = 40000,
    use_f0: bool = True,
    iteration: int = 1,
    seed: int = 0,
    config_json: bool = True,
    f0_files: bool = True,
) -> Path:
    """Write ``<folder>/G_<iteration>.pth`` (a tiny generator with its posterior encoder) and its experiment files.

    With ``config_json`` the folder gets RVC Studio's config.json (version, rate, pitch, f0 method); with
    ``f0_files`` a ``2b-f0nsf`` folder of voiced frames around 200 Hz.
    """
    from train.experiment import ExperimentConfig

    folder.mkdir(parents=True, exist_ok=True)
    model = tiny_synthesizer(version, sample_rate, use_f0, seed, feature_dim=TINY_DIM)
    path = write_checkpoint(TrainCheckpoint(dict(model.state_dict()), iteration), folder / f"G_{iteration}.pth")
    if config_json:
        tiny = {
            k: getattr(model.config, k)
            for k in (
                "inter_channels",
                "hidden_channels",
                "filter_channels",
                "n_layers",
                "upsample_initial_channel",
                "gin_channels",
                "spk_embed_dim",
                "feature_dim",
            )
        }
        config = ExperimentConfig.create(
            folder.name,
            version,
            sample_rate,
            use_f0,
            model_overrides=tiny,
            f0_method="rmvpe",
            content_encoder="hubert_base",
        )
        config.save(folder / "config.json")
    if f0_files:
        f0_dir = folder / "2b-f0nsf"
        f0_dir.mkdir(exist_ok=True)
        rng = np.random.default_rng(seed)
        for i in range(3):
            f0 = 200 * 2 ** (rng.standard_normal(100) / 12)
            f0[:10] = 0
            np.save(f0_dir / f"0_{i}.wav.npy", f0.astype(np.float32))
    return path


def write_train_log(folder: Path, *, sample_rate: str = "40k", if_f0: int = 1, version: str = "v2") -> Path:
    """RVC's train.log: the first line's last TAB field is the hyper-parameter dict."""
    hps = {"train": {"seed": 1234}, "sample_rate": sample_rate, "if_f0": if_f0, "version": version, "name": folder.name}
    line = f"2024-01-01 00:00:00,000\t{folder.name}\tINFO\t{hps!r}\n"
    path = folder / "train.log"
    path.write_text(line + "2024-01-01 00:00:01,000\tx\tINFO\tTraining is done.\n", encoding="utf-8")
    return path


def zip_files(path: Path, entries: dict[str, bytes | Path]) -> Path:
    """A zip holding ``entries`` (name -> bytes or file to copy), stored uncompressed."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            if isinstance(data, Path):
                zf.write(data, name)
            else:
                zf.writestr(name, data)
    return path


def _dos_time() -> tuple[int, int]:
    return 0, (2024 - 1980) << 9 | 1 << 5 | 1


def raw_zip(
    path: Path,
    name: str,
    payload: bytes,
    *,
    method: int,
    crc: int,
    compressed: int,
    size: int,
    external_attr: int = 0,
    made_by: int = 20,
) -> Path:
    """Write a one-entry zip by hand, with whatever header values are given (they may lie)."""
    encoded = name.encode("utf-8")
    time, date = _dos_time()
    local = (
        struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, time, date, crc, compressed, size, len(encoded), 0)
        + encoded
    )
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            made_by,
            20,
            0,
            method,
            time,
            date,
            crc,
            compressed,
            size,
            len(encoded),
            0,
            0,
            0,
            0,
            external_attr,
            0,
        )
        + encoded
    )
    with open(path, "wb") as handle:
        handle.write(local)
        handle.write(payload)
        offset = len(local) + len(payload)
        handle.write(central)
        handle.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), offset, 0))
    return path


def zeros_bomb(path: Path, name: str, size: int, chunk: int = 16 << 20) -> Path:
    """A real zip whose entry inflates to ``size`` zero bytes (a zip bomb), built without writing ``size`` bytes.

    Deflate blocks ended by a full flush are independent, so the compressed
    form of one chunk of zeros is repeated; only about size/1000 bytes reach
    the disk.  The CRC is the true CRC of the inflated data.
    """
    if size % chunk:
        raise ValueError("size must be a multiple of chunk")
    zeros = bytes(chunk)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(size // chunk):
        crc = zlib.crc32(zeros, crc)
    payload = block * (size // chunk) + tail
    return raw_zip(path, name, payload, method=8, crc=crc, compressed=len(payload), size=size)


def patch_sizes(path: Path, entry: str, *, size: int, compressed: int | None = None) -> Path:
    """Forge the sizes of ``entry`` in both its local and central headers (the data stays as it is)."""
    data = bytearray(path.read_bytes())
    encoded = entry.encode("utf-8")
    # (signature, offset of the uncompressed size, of the name length, of the name): local, then central header
    for signature, size_at, length_at, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            name_len = struct.unpack_from("<H", data, start + length_at)[0]
            if data[start + name_at : start + name_at + name_len] == encoded:
                if compressed is not None:
                    struct.pack_into("<I", data, start + size_at - 4, compressed)
                struct.pack_into("<I", data, start + size_at, size)
            start += 4
    path.write_bytes(bytes(data))
    return path
