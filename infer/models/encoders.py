"""The prior (content) encoder, the posterior encoder and the normalising flow (spec §5.3–5.5)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from infer.models import attentions
from infer.models.commons import randn, sequence_mask
from infer.models.modules import WN, Flip, ResidualCouplingLayer


class TextEncoder(nn.Module):
    """Content features (+ coarse pitch) → prior mean and log-std (``enc_p``).

    ``phone`` (B, T, in_channels) float, ``pitch`` (B, T) int64 in 1..255 or
    None, ``lengths`` (B,) → ``(m, logs, x_mask)``: (B, out, T'), (B, out, T'),
    (B, 1, T') float, where T' = T − ``skip_head`` (frames dropped after the
    Transformer, for the realtime path).  in_channels is 256 (v1) or 768 (v2).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        p_dropout: float,
        use_f0: bool = True,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.emb_phone = nn.Linear(in_channels, hidden_channels)
        if use_f0:
            self.emb_pitch = nn.Embedding(256, hidden_channels)
        self.encoder = attentions.Encoder(
            hidden_channels, filter_channels, n_heads, n_layers, kernel_size, float(p_dropout)
        )
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self, phone: torch.Tensor, pitch: torch.Tensor | None, lengths: torch.Tensor, skip_head: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.emb_phone(phone)
        if pitch is not None:
            if not hasattr(self, "emb_pitch"):
                raise ValueError("this model has no pitch guidance: call it with pitch=None")
            x = x + self.emb_pitch(pitch)
        x = F.leaky_relu(x * math.sqrt(self.hidden_channels), 0.1).transpose(1, -1)  # [b, h, t]
        x_mask = sequence_mask(lengths, x.size(2)).unsqueeze(1).to(x.dtype)
        x = self.encoder(x * x_mask, x_mask)
        if skip_head:
            x, x_mask = x[:, :, skip_head:], x_mask[:, :, skip_head:]
        stats = self.proj(x) * x_mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        return m, logs, x_mask


class PosteriorEncoder(nn.Module):
    """Linear spectrogram → posterior sample (``enc_q``, training only).

    ``x`` (B, spec_channels, T), ``x_lengths`` (B,), ``g`` (B, gin, 1) →
    ``(z, m, logs, x_mask)`` with z = (m + ε·exp(logs))·mask, ε ~ N(0, 1) drawn
    from ``generator`` (torch's global RNG when None).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self,
        x: torch.Tensor,
        x_lengths: torch.Tensor,
        g: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x_mask = sequence_mask(x_lengths, x.size(2)).unsqueeze(1).to(x.dtype)
        x = self.enc(self.pre(x) * x_mask, x_mask, g=g)
        stats = self.proj(x) * x_mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        z = (m + randn(tuple(m.shape), m, generator) * torch.exp(logs)) * x_mask
        return z, m, logs, x_mask


class ResidualCouplingBlock(nn.Module):
    """The flow: ``n_flows`` × (mean-only coupling layer, Flip); keys ``flows.{0,2,4,...}``.

    ``forward(x, x_mask, g, reverse)``: (B, channels, T) → same shape; the
    forward direction maps posterior to prior space, ``reverse=True`` back.
    """

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        n_flows: int = 4,
        gin_channels: int = 0,
    ) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(
                ResidualCouplingLayer(
                    channels,
                    hidden_channels,
                    kernel_size,
                    dilation_rate,
                    n_layers,
                    gin_channels=gin_channels,
                    mean_only=True,
                )
            )
            self.flows.append(Flip())

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> torch.Tensor:
        for flow in reversed(self.flows) if reverse else self.flows:
            x = flow(x, x_mask, g=g, reverse=reverse)
        return x
