"""Pitch (f0) extraction: one entry point for every method, plus the f0 helpers RVC uses.

Everything works on 16 kHz mono audio and 10 ms frames (hop 160): a waveform of
N samples has ``p_len = N // 160`` frames by default.  f0 arrays are float32 Hz
per frame with 0 for unvoiced frames.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.ndimage import median_filter

from infer.f0 import classic

if TYPE_CHECKING:
    from infer.f0.crepe import CrepePredictor
    from infer.f0.fcpe import FcpePredictor
    from infer.f0.rmvpe import RmvpePredictor

F0_METHODS = ("pm", "harvest", "dio", "crepe", "crepe-tiny", "rmvpe", "fcpe")
HOP = 160
SAMPLE_RATE = 16000
F0_MIN, F0_MAX = 50.0, 1100.0
CREPE_VARIANTS = {"crepe": "full", "crepe-tiny": "tiny"}
_METHOD_OPTIONS = {
    "rmvpe": frozenset({"threshold"}),
    "crepe": frozenset({"batch_size"}),
    "crepe-tiny": frozenset({"batch_size"}),
    "fcpe": frozenset({"threshold"}),
}


def _mel(f0_hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(f0_hz, dtype=np.float64) / 700.0)


def coarse_f0(f0: np.ndarray) -> np.ndarray:
    """Quantize f0 (Hz) to RVC's 255 mel-spaced pitch tokens (spec §3.1).

    Unvoiced frames and anything at or below 50 Hz map to 1, 1100 Hz and above to
    255; rounding is ``np.rint`` (half to even).  Computed in float64; returns int64
    with ``f0``'s shape.
    """
    mel = _mel(f0)
    mel_min, mel_max = _mel(F0_MIN), _mel(F0_MAX)
    voiced = mel > 0
    mel[voiced] = (mel[voiced] - mel_min) * 254 / (mel_max - mel_min) + 1
    mel[mel <= 1] = 1
    mel[mel > 255] = 255
    return np.rint(mel).astype(np.int64)


def shift_f0(f0: np.ndarray, semitones: float) -> np.ndarray:
    """Transpose by ``semitones`` (``f0·2^(k/12)``); unvoiced zeros stay zero. Keeps a float dtype."""
    f0 = np.asarray(f0)
    factor = 2.0 ** (semitones / 12.0)
    return f0 * np.asarray(factor, dtype=f0.dtype) if f0.dtype.kind == "f" else f0 * factor


def median_filter_f0(f0: np.ndarray, radius: int) -> np.ndarray:
    """Median over a window of ``2·radius + 1`` frames, zero-padded at the ends like ``scipy.signal.medfilt``.

    ``radius=0`` returns a copy unchanged.  RVC's harvest smoothing is ``radius=1``.
    """
    if radius < 0:
        raise ValueError(f"median filter radius must be >= 0, got {radius}")
    f0 = np.array(f0)
    if radius == 0 or f0.size == 0:
        return f0
    return median_filter(f0, size=2 * radius + 1, mode="constant", cval=0.0)


def fit_length(f0: np.ndarray, p_len: int) -> np.ndarray:
    """Cut or zero-pad at the end to exactly ``p_len`` frames; float32."""
    f0 = np.asarray(f0, dtype=np.float32)[:p_len]
    return np.pad(f0, (0, p_len - len(f0))) if len(f0) < p_len else f0


class PitchModels:
    """Lazily loaded pitch networks for one device, shared between calls and threads.

    Each network is loaded on first use and then reused; loading is guarded by a
    lock, so concurrent first calls load it once.  ``crepe_paths`` maps a CREPE
    variant (``"full"``, ``"tiny"``) to a weights file; a variant without an entry
    uses the CREPE module's default weights.  ``half`` applies to RMVPE
    (``None``: float16 on CUDA only).
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        *,
        rmvpe_path: str | Path | None = None,
        crepe_paths: dict[str, str | Path] | None = None,
        fcpe_path: str | Path | None = None,
        half: bool | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.rmvpe_path = Path(rmvpe_path) if rmvpe_path is not None else None
        self.crepe_paths = {variant: Path(path) for variant, path in (crepe_paths or {}).items()}
        self.fcpe_path = Path(fcpe_path) if fcpe_path is not None else None
        self.half = half
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _get(self, key: str, load: Any) -> Any:
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = load()
            return self._loaded[key]

    def rmvpe(self) -> RmvpePredictor:
        """The RMVPE predictor; raises ``ModelFileError`` with download instructions without weights."""
        from infer.f0.rmvpe import DEFAULT_WEIGHTS, DOWNLOAD_COMMAND, RmvpePredictor
        from infer.safe_load import ModelFileError

        if self.rmvpe_path is None:
            raise ModelFileError(
                f"The 'rmvpe' pitch method needs the RMVPE weights, normally at '{DEFAULT_WEIGHTS}'. "
                f"Download them with `{DOWNLOAD_COMMAND}` and pass their path as rmvpe_path."
            )
        path = self.rmvpe_path
        return self._get("rmvpe", lambda: RmvpePredictor(path, self.device, self.half))

    def crepe(self, variant: str = "full") -> CrepePredictor:
        """The CREPE predictor for ``variant`` (``"full"`` or ``"tiny"``)."""
        from infer.f0.crepe import CrepePredictor

        path = self.crepe_paths.get(variant)
        return self._get(f"crepe-{variant}", lambda: CrepePredictor(variant, weights_path=path, device=self.device))

    def fcpe(self) -> FcpePredictor:
        """The FCPE predictor."""
        from infer.f0.fcpe import FcpePredictor

        return self._get("fcpe", lambda: FcpePredictor(weights_path=self.fcpe_path, device=self.device))


def _waveform(wav16k: Any) -> np.ndarray:
    """1-D float waveform (numpy or torch, any float dtype) → float64 numpy, checked."""
    if isinstance(wav16k, torch.Tensor):
        if not wav16k.is_floating_point():
            raise ValueError(f"f0 extraction needs a float waveform in [-1, 1], got dtype {wav16k.dtype}")
        wav16k = wav16k.detach().to("cpu", torch.float64).numpy()
    wav = np.asarray(wav16k)
    if wav.dtype.kind != "f":
        raise ValueError(f"f0 extraction needs a float waveform in [-1, 1], got dtype {wav.dtype}")
    if wav.ndim != 1:
        raise ValueError(f"f0 extraction needs a 1-D (mono) 16 kHz waveform, got shape {wav.shape}")
    wav = wav.astype(np.float64, copy=False)
    if not np.isfinite(wav).all():
        raise ValueError("the waveform contains NaN or infinite samples")
    return wav


def _models_for_call(
    models: PitchModels | None, device: Any, rmvpe_path: Any, crepe_path: Any, fcpe_path: Any, variant: str
) -> PitchModels:
    if models is None:
        crepe_paths = {variant: crepe_path} if crepe_path is not None else None
        return PitchModels(device or "cpu", rmvpe_path=rmvpe_path, crepe_paths=crepe_paths, fcpe_path=fcpe_path)
    if device is not None and torch.device(device) != models.device:
        raise ValueError(f"device={device!r} differs from the PitchModels device {models.device}")
    given = {"rmvpe_path": (rmvpe_path, models.rmvpe_path), "fcpe_path": (fcpe_path, models.fcpe_path)}
    given["crepe_path"] = (crepe_path, models.crepe_paths.get(variant))
    for name, (path, held) in given.items():
        if path is not None and Path(path) != held:
            raise ValueError(f"{name}={str(path)!r} conflicts with the PitchModels passed as models; set it there")
    return models


def compute_f0(
    wav16k: np.ndarray | torch.Tensor,
    method: str,
    *,
    p_len: int | None = None,
    f0_min: float = F0_MIN,
    f0_max: float = F0_MAX,
    models: PitchModels | None = None,
    rmvpe_path: str | Path | None = None,
    crepe_path: str | Path | None = None,
    fcpe_path: str | Path | None = None,
    device: str | torch.device | None = None,
    **options: Any,
) -> np.ndarray:
    """f0 of a 16 kHz mono waveform with one of :data:`F0_METHODS`.

    ``wav16k``: 1-D float samples (numpy or torch, any float dtype).  Returns
    float32 ``(p_len,)`` Hz per 10 ms frame, 0 = unvoiced; ``p_len`` defaults to
    ``len(wav16k) // 160`` and every method's output is cut or zero-padded at the
    end to it ("pm" is first centred as RVC does).  Network methods use
    ``models`` (a long-lived :class:`PitchModels`) or a temporary one built from
    the ``*_path`` and ``device`` arguments.  Method options: ``threshold`` for
    "rmvpe" (default 0.03) and "fcpe", ``batch_size`` for the CREPE methods.
    "rmvpe" ignores ``f0_min``/``f0_max`` as RVC does.
    """
    if method not in F0_METHODS:
        raise ValueError(f"Unknown f0 method {method!r}; choose one of {', '.join(F0_METHODS)}")
    unknown = set(options) - _METHOD_OPTIONS.get(method, frozenset())
    if unknown:
        allowed = ", ".join(sorted(_METHOD_OPTIONS.get(method, frozenset()))) or "none"
        raise TypeError(f"f0 method {method!r} got unknown options {sorted(unknown)} (allowed: {allowed})")
    if not 0 < f0_min < f0_max:
        raise ValueError(f"need 0 < f0_min < f0_max, got f0_min={f0_min}, f0_max={f0_max}")
    wav = _waveform(wav16k)
    p_len = len(wav) // HOP if p_len is None else int(p_len)
    if p_len < 0:
        raise ValueError(f"p_len must be >= 0, got {p_len}")
    if len(wav) == 0:
        return np.zeros(p_len, dtype=np.float32)

    if method == "pm":
        f0 = classic.pm_f0(wav, p_len, f0_min, f0_max)
    elif method == "harvest":
        f0 = classic.harvest_f0(wav, f0_min, f0_max)
    elif method == "dio":
        f0 = classic.dio_f0(wav, f0_min, f0_max)
    else:
        variant = CREPE_VARIANTS.get(method, "")
        pitch_models = _models_for_call(models, device, rmvpe_path, crepe_path, fcpe_path, variant)
        if method == "rmvpe":
            f0 = pitch_models.rmvpe().predict(wav.astype(np.float32), **options)
        elif method == "fcpe":
            f0 = pitch_models.fcpe().rvc_f0(
                wav.astype(np.float32), p_len=p_len, f0_min=f0_min, f0_max=f0_max, **options
            )
        else:
            crepe = pitch_models.crepe(variant)
            f0 = crepe.rvc_f0(wav.astype(np.float32), f0_min=f0_min, f0_max=f0_max, **options)
    return fit_length(f0, p_len)
