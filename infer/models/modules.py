"""Building blocks of the VITS/RVC networks: norms, WaveNet, HiFi-GAN resblocks, flow layers.

Tensors are channel-first, (B, C, T), with a float mask (B, 1, T) where a
mask is taken.  Parameter names match RVC's state dicts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from infer.models.commons import fused_add_tanh_sigmoid_multiply, get_padding, init_weights
from infer.models.weight_norm import apply_weight_norm

LRELU_SLOPE = 0.1


def apply_conv(conv: nn.Conv1d | nn.ConvTranspose1d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for ``x`` (B, C, T), or the same 1-D convolution over ``x`` (B, C, 1, T).

    The 4-D form lets a caller keep its activations in torch's channels-last
    layout, which oneDNN convolves about 1.3–1.7× faster on the CPU than
    (B, C, T) (that layout gets reordered on the way in and out of every
    convolution).  Results equal ``conv(x)`` up to float32 rounding.  Needs
    integer (not "same") zero padding, as every convolution here has.
    """
    if x.dim() == 3:
        return conv(x)
    if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        raise ValueError("apply_conv on (B, C, 1, T) needs a convolution with integer zero padding")
    weight = conv.weight.unsqueeze(2)
    stride, padding, dilation = (1, conv.stride[0]), (0, conv.padding[0]), (1, conv.dilation[0])
    if isinstance(conv, nn.ConvTranspose1d):
        output_padding = (0, conv.output_padding[0])
        return F.conv_transpose2d(x, weight, conv.bias, stride, padding, output_padding, conv.groups, dilation)
    return F.conv2d(x, weight, conv.bias, stride, padding, dilation, conv.groups)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of (B, C, T); parameters ``gamma``/``beta`` (C,)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


class WN(nn.Module):
    """Non-causal WaveNet stack with gated tanh·sigmoid units and optional global conditioning.

    ``x`` (B, hidden, T), ``x_mask`` (B, 1, T), ``g`` (B, gin, 1) or None;
    returns the summed skip outputs (B, hidden, T), masked.  All convolutions
    are weight-normed (``in_layers``, ``res_skip_layers``, ``cond_layer``).
    """

    def __init__(
        self,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
        p_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"WN kernel_size must be odd, got {kernel_size}")
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        self.drop = nn.Dropout(float(p_dropout))
        if gin_channels:
            self.cond_layer = apply_weight_norm(nn.Conv1d(gin_channels, 2 * hidden_channels * n_layers, 1))
        for i in range(n_layers):
            dilation = dilation_rate**i
            self.in_layers.append(
                apply_weight_norm(
                    nn.Conv1d(
                        hidden_channels,
                        2 * hidden_channels,
                        kernel_size,
                        dilation=dilation,
                        padding=get_padding(kernel_size, dilation),
                    )
                )
            )
            # The last layer only feeds the skip sum, so it has no residual half.
            out_channels = 2 * hidden_channels if i < n_layers - 1 else hidden_channels
            self.res_skip_layers.append(apply_weight_norm(nn.Conv1d(hidden_channels, out_channels, 1)))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.hidden_channels
        output = torch.zeros_like(x)
        cond = self.cond_layer(g) if g is not None else None
        for i, (in_layer, res_skip_layer) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            x_in = in_layer(x)
            g_l = cond[:, 2 * hidden * i : 2 * hidden * (i + 1)] if cond is not None else torch.zeros_like(x_in)
            acts = self.drop(fused_add_tanh_sigmoid_multiply(x_in, g_l, hidden))
            res_skip = res_skip_layer(acts)
            if i < self.n_layers - 1:
                x = (x + res_skip[:, :hidden]) * x_mask
                output = output + res_skip[:, hidden:]
            else:
                output = output + res_skip
        return output * x_mask


def _weight_normed_conv(channels: int, kernel_size: int, dilation: int) -> nn.Conv1d:
    conv = nn.Conv1d(channels, channels, kernel_size, 1, dilation=dilation, padding=get_padding(kernel_size, dilation))
    init_weights(conv)
    return apply_weight_norm(conv)


class ResBlock1(nn.Module):
    """HiFi-GAN resblock type 1: per dilation d, x += c2(lrelu(c1_d(lrelu(x)))).  (B, C, T) → (B, C, T).

    Also takes (B, C, 1, T) without a mask (see :func:`apply_conv`).  Returns a new tensor, never ``x``.
    """

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3, 5)) -> None:
        super().__init__()
        if not dilation:
            raise ValueError("a resblock needs at least one dilation")
        self.convs1 = nn.ModuleList(_weight_normed_conv(channels, kernel_size, d) for d in dilation)
        self.convs2 = nn.ModuleList(_weight_normed_conv(channels, kernel_size, 1) for _ in dilation)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = F.leaky_relu(x, LRELU_SLOPE)
            if x_mask is not None:
                xt = xt * x_mask
            xt = F.leaky_relu_(apply_conv(c1, xt), LRELU_SLOPE)
            if x_mask is not None:
                xt = xt * x_mask
            x = apply_conv(c2, xt).add_(x)
        return x * x_mask if x_mask is not None else x


class ResBlock2(nn.Module):
    """HiFi-GAN resblock type 2: per dilation d, x += c_d(lrelu(x)).  (B, C, T) → (B, C, T).

    Also takes (B, C, 1, T) without a mask (see :func:`apply_conv`).  Returns a new tensor, never ``x``.
    """

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3)) -> None:
        super().__init__()
        if not dilation:
            raise ValueError("a resblock needs at least one dilation")
        self.convs = nn.ModuleList(_weight_normed_conv(channels, kernel_size, d) for d in dilation)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        for conv in self.convs:
            xt = F.leaky_relu(x, LRELU_SLOPE)
            if x_mask is not None:
                xt = xt * x_mask
            x = apply_conv(conv, xt).add_(x)
        return x * x_mask if x_mask is not None else x


class ResidualCouplingLayer(nn.Module):
    """Affine coupling: the first half of the channels predicts a shift (and scale) of the second.

    With ``mean_only`` (RVC's choice) the forward map is x1 ← m(x0) + x1 and the
    reverse is x1 ← x1 − m(x0).  ``x`` (B, channels, T) → same shape.
    """

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        p_dropout: float = 0.0,
        gin_channels: int = 0,
        mean_only: bool = True,
    ) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"coupling layer needs an even channel count, got {channels}")
        self.half_channels = channels // 2
        self.mean_only = mean_only
        self.pre = nn.Conv1d(self.half_channels, hidden_channels, 1)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels, p_dropout)
        self.post = nn.Conv1d(hidden_channels, self.half_channels * (1 if mean_only else 2), 1)
        with torch.no_grad():  # start as the identity map
            self.post.weight.zero_()
            self.post.bias.zero_()

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> torch.Tensor:
        x0, x1 = torch.split(x, [self.half_channels] * 2, 1)
        h = self.enc(self.pre(x0) * x_mask, x_mask, g=g)
        stats = self.post(h) * x_mask
        if self.mean_only:
            m, logs = stats, None
        else:
            m, logs = torch.split(stats, [self.half_channels] * 2, 1)
        if not reverse:
            x1 = m + (x1 * torch.exp(logs) if logs is not None else x1) * x_mask
        else:
            x1 = (x1 - m) * (torch.exp(-logs) if logs is not None else 1.0) * x_mask
        return torch.cat([x0, x1], 1)


class Flip(nn.Module):
    """Reverses the channel order (its own inverse; has no parameters)."""

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> torch.Tensor:
        return torch.flip(x, [1])
