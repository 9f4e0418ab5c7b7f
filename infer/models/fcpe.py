"""FCPE's pitch network ``CFNaiveMelPE``, conv-only variant (torchfcpe 0.0.4's bundled model).

Log-mel frames go through an input stack (Conv1d k3 → GroupNorm(4) →
LeakyReLU → Conv1d k3), ``n_layers`` residual conformer convolution modules
(LayerNorm → pointwise conv → GLU → depthwise conv k31 → SiLU → pointwise conv),
a final LayerNorm and a weight-normed Linear to 360 cent bins, then a sigmoid.
Parameter names equal torchfcpe's, so ``fcpe_c_v001.pt`` loads strictly.  The
attention branch (``conv_only: false``) and harmonic embeddings are not
supported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from infer.models.weight_norm import apply_weight_norm, rename_parametrized_keys

_GROUP_NORM_GROUPS = 4
_CONV_KERNEL = 31
_CONV_EXPANSION = 2


def hz_to_cents(f0_hz: float) -> float:
    """Cents relative to 10 Hz."""
    return 1200.0 * math.log2(f0_hz / 10.0)


class _DepthwiseConv(nn.Module):
    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ConformerConvModule(nn.Module):
    """``(B, T, dim)`` → ``(B, T, dim)``: the conformer's convolution branch (no residual)."""

    def __init__(self, dim: int, kernel_size: int = _CONV_KERNEL) -> None:
        super().__init__()
        inner = dim * _CONV_EXPANSION
        # Keys follow the checkpoint's nn.Sequential; indices 1, 3, 5, 7 and 8 were
        # parameter-free steps (transpose, GLU, SiLU, transpose, dropout).
        self.net = nn.ModuleDict(
            {
                "0": nn.LayerNorm(dim),
                "2": nn.Conv1d(dim, 2 * inner, 1),
                "4": _DepthwiseConv(inner, kernel_size),
                "6": nn.Conv1d(inner, dim, 1),
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.net
        h = layer["0"](x).transpose(1, 2)
        h = F.glu(layer["2"](h), dim=1)  # first half * sigmoid(second half), over channels
        h = F.silu(layer["4"](h))
        return layer["6"](h).transpose(1, 2)


class EncoderLayer(nn.Module):
    """``x + ConformerConvModule(x)``.  ``norm`` belongs to the unused attention branch.

    It exists only so that checkpoints load strictly.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conformer = ConformerConvModule(dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conformer(x)


class _Encoder(nn.Module):
    def __init__(self, dim: int, n_layers: int) -> None:
        super().__init__()
        self.encoder_layers = nn.ModuleList(EncoderLayer(dim) for _ in range(n_layers))


class CFNaiveMelPE(nn.Module):
    """Log-mel ``(B, T, n_mels)`` float32 → latent pitch salience ``(B, T, out_dims)`` in (0, 1).

    ``cent_table`` (buffer, ``(out_dims,)``) gives the cents (re 10 Hz) of each
    output bin, evenly spaced from ``f0_min`` to ``f0_max``; a checkpoint's
    stored table replaces the computed one.
    """

    def __init__(
        self,
        input_channels: int = 128,
        out_dims: int = 360,
        hidden_dims: int = 512,
        n_layers: int = 6,
        f0_min: float = 32.70,
        f0_max: float = 1975.5,
    ) -> None:
        super().__init__()
        if hidden_dims % _GROUP_NORM_GROUPS:
            raise ValueError(f"hidden_dims must be divisible by {_GROUP_NORM_GROUPS}; got {hidden_dims}")
        self.input_stack = nn.Sequential(
            nn.Conv1d(input_channels, hidden_dims, 3, padding=1),
            nn.GroupNorm(_GROUP_NORM_GROUPS, hidden_dims),
            nn.LeakyReLU(0.01),
            nn.Conv1d(hidden_dims, hidden_dims, 3, padding=1),
        )
        self.net = _Encoder(hidden_dims, n_layers)
        self.norm = nn.LayerNorm(hidden_dims)
        self.output_proj = apply_weight_norm(nn.Linear(hidden_dims, out_dims), dim=0)
        cents = torch.linspace(hz_to_cents(f0_min), hz_to_cents(f0_max), out_dims)
        self.register_buffer("cent_table", cents)
        self.register_buffer("gaussian_blurred_cent_mask", torch.tensor(hz_to_cents(f0_max)))  # training only

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any]) -> CFNaiveMelPE:
        """Build from a torchfcpe checkpoint dict (``config_dict`` + ``model``), strict load, eval mode.

        Raises ``ValueError`` for a config this implementation does not cover.
        """
        config = checkpoint["config_dict"]
        model_cfg, mel_cfg = config["model"], config["mel"]
        if model_cfg.get("type") != "CFNaiveMelPE":
            raise ValueError(f"unsupported FCPE model type {model_cfg.get('type')!r}; expected 'CFNaiveMelPE'")
        if not model_cfg.get("conv_only", False):
            raise ValueError("only the conv-only FCPE variant (config model.conv_only: true) is supported")
        if model_cfg.get("use_harmonic_emb", False):
            raise ValueError("FCPE models with harmonic embeddings (use_harmonic_emb: true) are not supported")
        net = cls(
            input_channels=int(mel_cfg["num_mels"]),
            out_dims=int(model_cfg["out_dims"]),
            hidden_dims=int(model_cfg["hidden_dims"]),
            n_layers=int(model_cfg["n_layers"]),
            f0_min=float(model_cfg["f0_min"]),
            f0_max=float(model_cfg["f0_max"]),
        )
        net.load_state_dict(rename_parametrized_keys(checkpoint["model"]), strict=True)
        return net.eval()

    @property
    def trunk_radius(self) -> int:
        """Frames of context each side that :meth:`trunk` needs for an exact output frame."""
        return 1 + len(self.net.encoder_layers) * (_CONV_KERNEL // 2)

    def trunk(self, normed: torch.Tensor) -> torch.Tensor:
        """Everything after the GroupNorm: ``(B, hidden, T)`` → latent ``(B, T, out_dims)``.

        Purely local in time (radius :attr:`trunk_radius`), unlike the GroupNorm,
        whose statistics span the whole input.
        """
        x = self.input_stack[3](self.input_stack[2](normed)).transpose(1, 2)
        for layer in self.net.encoder_layers:
            x = layer(x)
        return torch.sigmoid(self.output_proj(self.norm(x)))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, T, n_mels)`` → ``(B, T, out_dims)``, all frames at once."""
        stem = self.input_stack[0](mel.transpose(1, 2))
        return self.trunk(self.input_stack[1](stem))

    def hidden_states(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        """Intermediate ``(B, T, hidden)`` outputs for inspection: ``input_stack``,
        ``layer0`` … ``layer{n-1}``, ``final_norm``, plus ``logits`` ``(B, T, out_dims)``."""
        x = self.input_stack(mel.transpose(1, 2)).transpose(1, 2)
        states = {"input_stack": x}
        for index, layer in enumerate(self.net.encoder_layers):
            x = layer(x)
            states[f"layer{index}"] = x
        states["final_norm"] = self.norm(x)
        states["logits"] = self.output_proj(states["final_norm"])
        return states
