"""Choosing the compute device and precision (spec §9.7, without its side effects)."""

from __future__ import annotations

import torch

# GPUs whose fp16 is slow or broken: RVC forces fp32 on these (spec §9.7).
_FP32_ONLY_NAMES = ("16", "P40", "P10", "1060", "1070", "1080")


def resolve_device(requested: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` → CUDA if available, else Apple MPS, else CPU.

    An explicit ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"cpu"`` is checked and
    returned; asking for a device that is not there raises ``ValueError`` with
    what is available.
    """
    if isinstance(requested, torch.device):
        requested = str(requested)
    text = (requested or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"Device '{text}' was requested but no CUDA GPU is usable here; use 'cpu' or 'auto'.")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"Device '{text}' does not exist: this machine has {torch.cuda.device_count()} GPU(s).")
        return torch.device("cuda", index)
    if device.type == "mps" and not _mps_available():
        raise ValueError("Device 'mps' was requested but Apple MPS is not available; use 'cpu' or 'auto'.")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"Unsupported device '{text}'; use auto, cpu, cuda, cuda:N or mps.")
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def default_half(device: torch.device) -> bool:
    """Whether fp16 helps on ``device``: CUDA GPUs except those RVC runs in fp32."""
    if device.type != "cuda":
        return False
    name = torch.cuda.get_device_name(device).upper()
    if "V100" in name:
        return True
    return not any(token in name for token in _FP32_ONLY_NAMES)


def gpu_memory_gb(device: torch.device) -> float | None:
    """Total memory of a CUDA device in GiB, or None for other devices."""
    if device.type != "cuda":
        return None
    return torch.cuda.get_device_properties(device).total_memory / 1024**3
