"""HiFi-GAN discriminators used to train RVC models (spec §5.10).

``MultiPeriodDiscriminator`` holds one scale discriminator (``discriminators.0``)
and one period discriminator per period (``discriminators.1..``), all
weight-normed, with RVC's key names.  v1 uses periods [2, 3, 5, 7, 11, 17];
v2 adds 23 and 37.  ``channel_divisor_*`` build narrower copies with the
same graph (the public reference fixture divides Conv1d widths by 4 and
Conv2d widths by 16); groups are capped at the input width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from infer.models.commons import get_padding
from infer.models.modules import LRELU_SLOPE
from infer.models.weight_norm import apply_weight_norm

PERIODS = {"v1": (2, 3, 5, 7, 11, 17), "v2": (2, 3, 5, 7, 11, 17, 23, 37)}

# (out channels, kernel, stride, groups, padding) of DiscriminatorS's convolutions.
_SCALE_LAYERS = (
    (16, 15, 1, 1, 7),
    (64, 41, 4, 4, 20),
    (256, 41, 4, 16, 20),
    (1024, 41, 4, 64, 20),
    (1024, 41, 4, 256, 20),
    (1024, 5, 1, 1, 2),
)
_PERIOD_CHANNELS = (32, 128, 512, 1024, 1024)

FeatureMaps = list[torch.Tensor]


def _norm(module: nn.Module, use_spectral_norm: bool) -> nn.Module:
    # RVC never turns spectral norm on; torch's legacy spectral_norm keeps its key names.
    return nn.utils.spectral_norm(module) if use_spectral_norm else apply_weight_norm(module)


def _narrow(channels: int, divisor: int) -> int:
    if channels % divisor:
        raise ValueError(f"channel divisor {divisor} does not divide the width {channels}")
    return channels // divisor


class DiscriminatorS(nn.Module):
    """Scale discriminator on raw audio (B, 1, N) → (logits (B, L), 7 feature maps)."""

    def __init__(self, use_spectral_norm: bool = False, channel_divisor: int = 1) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        in_ch = 1
        for out, kernel, stride, groups, padding in _SCALE_LAYERS:
            out = _narrow(out, channel_divisor)
            conv = nn.Conv1d(in_ch, out, kernel, stride, groups=min(groups, in_ch), padding=padding)
            self.convs.append(_norm(conv, use_spectral_norm))
            in_ch = out
        self.conv_post = _norm(nn.Conv1d(in_ch, 1, 3, 1, padding=1), use_spectral_norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, FeatureMaps]:
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class DiscriminatorP(nn.Module):
    """Period discriminator: audio (B, 1, N) folded to (B, 1, N/p, p), then (k, 1) Conv2d stack.

    Returns (logits (B, L), 6 feature maps).  N is reflect-padded to a multiple of p.
    """

    def __init__(
        self,
        period: int,
        kernel_size: int = 5,
        stride: int = 3,
        use_spectral_norm: bool = False,
        channel_divisor: int = 1,
    ) -> None:
        super().__init__()
        self.period = period
        padding = (get_padding(kernel_size, 1), 0)
        widths = [_narrow(c, channel_divisor) for c in _PERIOD_CHANNELS]
        self.convs = nn.ModuleList()
        in_ch = 1
        for i, out in enumerate(widths):
            layer_stride = (stride, 1) if i < len(widths) - 1 else 1
            conv = nn.Conv2d(in_ch, out, (kernel_size, 1), layer_stride, padding=padding)
            self.convs.append(_norm(conv, use_spectral_norm))
            in_ch = out
        self.conv_post = _norm(nn.Conv2d(in_ch, 1, (3, 1), 1, padding=(1, 0)), use_spectral_norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, FeatureMaps]:
        batch, channels, length = x.shape
        if length % self.period:
            n_pad = self.period - length % self.period
            x = F.pad(x, (0, n_pad), "reflect")
            length += n_pad
        x = x.view(batch, channels, length // self.period, self.period)
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class MultiPeriodDiscriminator(nn.Module):
    """DiscriminatorS plus one DiscriminatorP per period, as ``discriminators.{0,1,...}``.

    ``forward(y, y_hat)`` on real and generated audio (B, 1, N) returns RVC's
    ``(y_d_rs, y_d_gs, fmap_rs, fmap_gs)``: per sub-discriminator logits and
    feature-map lists.
    """

    def __init__(
        self,
        periods: Sequence[int] = PERIODS["v1"],
        use_spectral_norm: bool = False,
        channel_divisor_s: int = 1,
        channel_divisor_p: int = 1,
    ) -> None:
        super().__init__()
        self.periods = tuple(int(p) for p in periods)
        discs: list[nn.Module] = [DiscriminatorS(use_spectral_norm, channel_divisor_s)]
        discs += [
            DiscriminatorP(p, use_spectral_norm=use_spectral_norm, channel_divisor=channel_divisor_p)
            for p in self.periods
        ]
        self.discriminators = nn.ModuleList(discs)

    def forward(
        self, y: torch.Tensor, y_hat: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[FeatureMaps], list[FeatureMaps]]:
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = [], [], [], []
        for disc in self.discriminators:
            y_d_r, fmap_r = disc(y)
            y_d_g, fmap_g = disc(y_hat)
            y_d_rs.append(y_d_r)
            y_d_gs.append(y_d_g)
            fmap_rs.append(fmap_r)
            fmap_gs.append(fmap_g)
        return y_d_rs, y_d_gs, fmap_rs, fmap_gs


def build_discriminator(
    version: str, *, use_spectral_norm: bool = False, channel_divisor_s: int = 1, channel_divisor_p: int = 1
) -> MultiPeriodDiscriminator:
    """RVC's discriminator for ``version`` "v1" (7 sub-discriminators) or "v2" (9)."""
    if version not in PERIODS:
        raise ValueError(f"Unknown model version {version!r}; expected 'v1' or 'v2'.")
    return MultiPeriodDiscriminator(PERIODS[version], use_spectral_norm, channel_divisor_s, channel_divisor_p)
