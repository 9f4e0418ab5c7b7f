"""Small tensor helpers shared by the VITS-style networks (no state, no I/O)."""

from __future__ import annotations

import torch
from torch import nn

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d)


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the length of a stride-1 convolution with odd ``kernel_size``."""
    return (kernel_size * dilation - dilation) // 2


def init_weights(module: nn.Module, mean: float = 0.0, std: float = 0.01) -> None:
    """Draw the weight of a convolution from N(mean, std²); other modules are left alone.

    Use with ``module.apply(init_weights)`` *before* weight norm is applied,
    so the normalised weight starts from this draw.
    """
    if isinstance(module, _CONV_TYPES):
        with torch.no_grad():
            module.weight.normal_(mean, std)


def sequence_mask(lengths: torch.Tensor, max_length: int | None = None) -> torch.Tensor:
    """Boolean mask (B, T), True where the time index is below ``lengths`` (B,)."""
    if max_length is None:
        max_length = int(lengths.max())
    steps = torch.arange(max_length, dtype=lengths.dtype, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)


def slice_segments(x: torch.Tensor, starts: torch.Tensor, segment_size: int) -> torch.Tensor:
    """Cut ``segment_size`` steps of the last axis of ``x`` (B, ..., T) at per-item ``starts`` (B,).

    Returns (B, ..., segment_size).  Steps past the end of ``x`` are zero.
    """
    out = x.new_zeros(*x.shape[:-1], segment_size)
    for i, start in enumerate(starts.tolist()):
        piece = x[i, ..., start : start + segment_size]
        out[i, ..., : piece.shape[-1]] = piece
    return out


def rand_slice_segments(
    x: torch.Tensor,
    lengths: torch.Tensor | None = None,
    segment_size: int = 4,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``segment_size`` window of each item of ``x`` (B, C, T).

    Each start is drawn uniformly from [0, length - segment_size] (RVC draws
    ``rand(B)`` once, on ``generator`` or torch's global RNG).  Returns the
    slices (B, C, segment_size) and the starts (B,) int64.
    """
    batch = x.shape[0]
    if lengths is None:
        lengths = torch.full((batch,), x.shape[-1], device=x.device)
    max_start = torch.clamp(lengths - segment_size + 1, min=1)
    # RVC draws on the CPU (global RNG) and moves the draw to x's device.
    draws = torch.rand(batch, generator=generator, device=generator.device if generator else "cpu")
    starts = (draws.to(x.device) * max_start).to(torch.long)
    return slice_segments(x, starts, segment_size), starts


def fused_add_tanh_sigmoid_multiply(a: torch.Tensor, b: torch.Tensor, n_channels: int) -> torch.Tensor:
    """WaveNet gate: tanh of the first ``n_channels`` of a+b times sigmoid of the rest."""
    summed = a + b
    return torch.tanh(summed[:, :n_channels]) * torch.sigmoid(summed[:, n_channels:])


def randn(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """N(0, 1) noise with ``like``'s dtype and device, drawn from ``generator``.

    With ``generator=None`` this is exactly ``torch.randn_like`` on a tensor of
    ``shape`` (torch's global RNG), so seeded runs reproduce RVC's draws.
    """
    if generator is None:
        return torch.randn(shape, dtype=like.dtype, device=like.device)
    draw = torch.randn(shape, dtype=like.dtype, device=generator.device, generator=generator)
    return draw.to(like.device)


def rand(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """U[0, 1) noise with ``like``'s dtype and device, drawn like :func:`randn`."""
    if generator is None:
        return torch.rand(shape, dtype=like.dtype, device=like.device)
    draw = torch.rand(shape, dtype=like.dtype, device=generator.device, generator=generator)
    return draw.to(like.device)
