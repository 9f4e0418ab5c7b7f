"""Neural-source-filter excitation: the harmonic source fed to RVC's pitch decoder (spec §5.7).

Numerics follow RVC branch ``20240604``: the phase inside a frame is computed
in closed form and the per-frame phase advance is accumulated with ``fmod``
in float32, so long inputs do not lose precision.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from infer.models.commons import rand, randn


class SineGen(nn.Module):
    """Sine (plus harmonics) at a frame-level f0, with noise; no parameters.

    ``forward(f0, upp)``: ``f0`` (B, T) in Hz (0 = unvoiced) at one value per
    frame, ``upp`` samples per frame.  Returns ``(source, uv, noise)``, each
    (B, T·upp, dim) except ``uv`` (B, T·upp, 1), in ``f0``'s dtype, where
    dim = harmonic_num + 1 and source = sine_amp·sin(phase)·uv + noise.

    Random draws, in this order (RVC's order): initial phases ``rand(1, 1, dim)``
    (the fundamental's is forced to 0), then the additive noise ``randn``.
    With ``add_noise=False`` nothing is drawn and the result is deterministic.
    """

    def __init__(
        self,
        sample_rate: int,
        harmonic_num: int = 0,
        sine_amp: float = 0.1,
        noise_std: float = 0.003,
        voiced_threshold: float = 0.0,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.dim = harmonic_num + 1
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.voiced_threshold = voiced_threshold

    def _phase(self, f0: torch.Tensor, upp: int) -> torch.Tensor:
        """Fundamental phase in cycles, (B, T·upp, 1), from f0 (B, T, 1)."""
        steps = torch.arange(1, upp + 1, dtype=f0.dtype, device=f0.device)
        phase = f0 / self.sample_rate * steps  # (B, T, upp): phase inside each frame
        # Phase reached at the end of each frame, wrapped to [-0.5, 0.5) so the
        # running sum over frames stays small; the sum is wrapped again by fmod.
        advance = torch.fmod(phase[:, :-1, -1:].float() + 0.5, 1.0) - 0.5
        start = advance.cumsum(dim=1).fmod(1.0).to(f0)
        phase = phase + F.pad(start, (0, 0, 1, 0))
        return phase.reshape(f0.shape[0], -1, 1)

    @torch.no_grad()
    def forward(
        self, f0: torch.Tensor, upp: int, *, add_noise: bool = True, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f0 = f0.unsqueeze(-1)
        harmonics = torch.arange(1, self.dim + 1, dtype=f0.dtype, device=f0.device).reshape(1, 1, -1)
        phase = self._phase(f0, upp) * harmonics
        if add_noise:
            initial = rand((1, 1, self.dim), f0, generator)
            initial[..., 0] = 0
            phase = phase + initial
        sine = torch.sin(2 * math.pi * phase) * self.sine_amp
        uv = (f0 > self.voiced_threshold).to(f0.dtype)
        uv = F.interpolate(uv.transpose(2, 1), scale_factor=float(upp), mode="nearest").transpose(2, 1)
        if not add_noise:
            return sine * uv, uv, torch.zeros_like(sine)
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        noise = noise_amp * randn(tuple(sine.shape), sine, generator)
        return sine * uv + noise, uv, noise


class SourceModuleHnNSF(nn.Module):
    """Harmonic-plus-noise source: SineGen, then ``l_linear`` (dim → 1) and tanh.

    ``forward(f0, upp)``: ``f0`` (B, T) Hz → excitation (B, T·upp, 1) in the
    dtype of ``l_linear``.  Keys: ``l_linear.weight`` (1, dim), ``l_linear.bias``.
    """

    def __init__(
        self,
        sample_rate: int,
        harmonic_num: int = 0,
        sine_amp: float = 0.1,
        add_noise_std: float = 0.003,
        voiced_threshold: float = 0.0,
    ) -> None:
        super().__init__()
        self.l_sin_gen = SineGen(sample_rate, harmonic_num, sine_amp, add_noise_std, voiced_threshold)
        self.l_linear = nn.Linear(harmonic_num + 1, 1)
        self.l_tanh = nn.Tanh()

    def forward(
        self, f0: torch.Tensor, upp: int, *, add_noise: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        sine, _uv, _noise = self.l_sin_gen(f0, upp, add_noise=add_noise, generator=generator)
        return self.l_tanh(self.l_linear(sine.to(self.l_linear.weight.dtype)))
