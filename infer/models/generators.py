"""HiFi-GAN decoders: plain (``Generator``) and with the NSF harmonic source (``GeneratorNSF``), spec §5.7.

One class holds both: giving ``sample_rate`` adds RVC's source module
(``m_source``) and the ``noise_convs`` that inject it after every upsampling
stage.  Parameter names and registration order match RVC's state dicts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from infer.models.commons import init_weights
from infer.models.modules import LRELU_SLOPE, ResBlock1, ResBlock2, apply_conv
from infer.models.nsf import SourceModuleHnNSF
from infer.models.weight_norm import apply_weight_norm


def _as_int(value: int | torch.Tensor) -> int:
    return int(value.item()) if isinstance(value, torch.Tensor) else int(value)


class Generator(nn.Module):
    """Upsamples a latent (B, initial_channel, T) to audio (B, 1, T·hop) in [-1, 1].

    ``hop`` = prod(upsample_rates).  ``sample_rate`` (Hz) turns on the NSF
    source; ``forward`` then needs frame-level ``f0`` (B, T) in Hz.
    ``gin_channels`` > 0 adds the speaker conditioning ``cond`` (g: (B, gin, 1)).
    """

    def __init__(
        self,
        initial_channel: int,
        resblock: str,
        resblock_kernel_sizes: Sequence[int],
        resblock_dilation_sizes: Sequence[Sequence[int]],
        upsample_rates: Sequence[int],
        upsample_initial_channel: int,
        upsample_kernel_sizes: Sequence[int],
        gin_channels: int = 0,
        sample_rate: int | None = None,
    ) -> None:
        super().__init__()
        if resblock not in ("1", "2"):
            raise ValueError(f"resblock must be '1' or '2', got {resblock!r}")
        self.num_kernels = len(resblock_kernel_sizes)
        self.upp = math.prod(upsample_rates)
        self.use_source = sample_rate is not None
        if self.use_source:
            self.m_source = SourceModuleHnNSF(sample_rate)
            self.noise_convs = nn.ModuleList()
        self.conv_pre = nn.Conv1d(initial_channel, upsample_initial_channel, 7, 1, padding=3)
        block_type = ResBlock1 if resblock == "1" else ResBlock2

        self.ups = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            in_ch, out_ch = upsample_initial_channel // 2**i, upsample_initial_channel // 2 ** (i + 1)
            up = nn.ConvTranspose1d(in_ch, out_ch, kernel, rate, padding=(kernel - rate) // 2)
            init_weights(up)
            self.ups.append(apply_weight_norm(up))
            if self.use_source:
                # Downsample the sample-rate source to this stage's rate.
                if i + 1 < len(upsample_rates):
                    stride = math.prod(upsample_rates[i + 1 :])
                    self.noise_convs.append(nn.Conv1d(1, out_ch, 2 * stride, stride, padding=stride // 2))
                else:
                    self.noise_convs.append(nn.Conv1d(1, out_ch, 1))

        self.resblocks = nn.ModuleList()
        for i in range(len(self.ups)):
            ch = upsample_initial_channel // 2 ** (i + 1)
            for kernel, dilation in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(block_type(ch, kernel, dilation))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=False)
        if gin_channels:
            self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

    def forward(
        self,
        x: torch.Tensor,
        f0: torch.Tensor | None = None,
        g: torch.Tensor | None = None,
        n_res: int | torch.Tensor | None = None,
        *,
        add_noise: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``x`` (B, C, T) → audio (B, 1, T'·hop) with T' = ``n_res`` or T.

        ``n_res`` (realtime formant shift) linearly resizes the latent to n_res
        frames and the source to n_res·hop samples.  ``add_noise=False`` makes
        the NSF source noise-free; ``generator`` feeds its random draws.
        """
        source = None
        if self.use_source:
            if f0 is None:
                raise ValueError("this decoder has an NSF source: pass frame-level f0 (B, T) in Hz")
            source = self.m_source(f0, self.upp, add_noise=add_noise, generator=generator).transpose(1, 2)
        if n_res is not None:
            frames = _as_int(n_res)
            if source is not None and frames * self.upp != source.shape[-1]:
                source = F.interpolate(source, size=frames * self.upp, mode="linear")
            if frames != x.shape[-1]:
                x = F.interpolate(x, size=frames, mode="linear")

        rows = x.device.type == "cpu" and not torch.is_grad_enabled()
        if rows:  # CPU inference: (B, C, 1, T) channels-last, oneDNN's fast layout (see apply_conv)
            x, source = _as_rows(x), None if source is None else _as_rows(source)
            g = None if g is None else g.unsqueeze(2)
        x = apply_conv(self.conv_pre, x)
        if g is not None:
            x = x.add_(apply_conv(self.cond, g))
        # In-place steps below only touch fresh tensors that autograd does not keep.
        for i, up in enumerate(self.ups):
            x = apply_conv(up, F.leaky_relu_(x, LRELU_SLOPE))
            if source is not None:
                x = x.add_(apply_conv(self.noise_convs[i], source))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            total = blocks[0](x)
            for block in blocks[1:]:
                total = total.add_(block(x))
            x = total.div_(self.num_kernels)
        x = torch.tanh(apply_conv(self.conv_post, F.leaky_relu_(x)))  # default slope 0.01 here, as in RVC
        return x.squeeze(2) if rows else x


def _as_rows(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T) → (B, C, 1, T) in the channels-last memory layout."""
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


class GeneratorNSF(Generator):
    """:class:`Generator` with the NSF source; ``sample_rate`` is required."""

    def __init__(
        self,
        initial_channel: int,
        resblock: str,
        resblock_kernel_sizes: Sequence[int],
        resblock_dilation_sizes: Sequence[Sequence[int]],
        upsample_rates: Sequence[int],
        upsample_initial_channel: int,
        upsample_kernel_sizes: Sequence[int],
        gin_channels: int,
        sample_rate: int,
    ) -> None:
        super().__init__(
            initial_channel,
            resblock,
            resblock_kernel_sizes,
            resblock_dilation_sizes,
            upsample_rates,
            upsample_initial_channel,
            upsample_kernel_sizes,
            gin_channels,
            sample_rate,
        )
