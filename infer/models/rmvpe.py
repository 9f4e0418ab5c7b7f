"""The RMVPE pitch network (``E2E``): a deep U-Net over the log-mel, a BiGRU and a salience head.

Key names equal RVC's ``infer/lib/rmvpe.py`` so that ``assets/rmvpe/rmvpe.pt``
loads strictly (spec §1.8).  Widths are never hard-coded by callers: use
:meth:`RmvpeConfig.from_state_dict` to read them from a checkpoint (the public
test fixture is 8× narrower than the real file).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

BATCH_NORM_MOMENTUM = 0.01


@dataclass(frozen=True)
class RmvpeConfig:
    """Hyper-parameters of :class:`E2E`; RVC's ``rmvpe.pt`` is ``RmvpeConfig()``."""

    n_blocks: int = 4  # residual conv blocks per U-Net stage
    n_gru: int = 1  # BiGRU layers
    en_de_layers: int = 5  # encoder stages (each halves time and mel axes) = decoder stages
    inter_layers: int = 4  # stages at the bottom of the U-Net
    in_channels: int = 1
    en_out_channels: int = 16  # channels of the first encoder stage; doubled per stage
    n_mels: int = 128
    cnn_channels: int = 3
    gru_hidden: int = 256
    n_classes: int = 360  # 20-cent pitch bins

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> RmvpeConfig:
        """Read the widths and depths from a state dict's key names and shapes.

        Raises ``KeyError`` naming the first missing key when ``state`` is not an RMVPE state dict.
        """

        def shape(key: str) -> tuple[int, ...]:
            if key not in state:
                raise KeyError(key)
            return tuple(state[key].shape)

        def count(pattern: str) -> int:
            regex = re.compile(pattern)
            return len({m.group(1) for key in state if (m := regex.match(key))})

        first_conv = shape("unet.encoder.layers.0.conv.0.conv.0.weight")
        cnn = shape("cnn.weight")
        gru_input = shape("fc.0.gru.weight_ih_l0")
        return cls(
            n_blocks=count(r"unet\.encoder\.layers\.0\.conv\.(\d+)\."),
            n_gru=count(r"fc\.0\.gru\.weight_ih_l(\d+)$"),
            en_de_layers=count(r"unet\.encoder\.layers\.(\d+)\."),
            inter_layers=count(r"unet\.intermediate\.layers\.(\d+)\."),
            in_channels=shape("unet.encoder.bn.weight")[0],
            en_out_channels=first_conv[0],
            n_mels=gru_input[1] // cnn[0],
            cnn_channels=cnn[0],
            gru_hidden=shape("fc.0.gru.weight_hh_l0")[1],
            n_classes=shape("fc.1.weight")[0],
        )


class ResidualConvBlock(nn.Module):
    """Two 3×3 conv + BatchNorm + ReLU layers with a residual path (1×1 conv when widths differ).

    ``(B, in, T, F) → (B, out, T, F)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=BATCH_NORM_MOMENTUM),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=BATCH_NORM_MOMENTUM),
            nn.ReLU(inplace=True),
        )
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        return self.conv(x).add_(residual)


def residual_blocks(in_channels: int, out_channels: int, n_blocks: int) -> nn.ModuleList:
    """``n_blocks`` residual blocks; the first changes the width from ``in_channels`` to ``out_channels``."""
    widths = [in_channels] + [out_channels] * n_blocks
    return nn.ModuleList(ResidualConvBlock(a, b) for a, b in zip(widths[:-1], widths[1:]))


class ResidualStage(nn.Module):
    """A U-Net stage without resampling: :func:`residual_blocks` applied in sequence."""

    def __init__(self, in_channels: int, out_channels: int, n_blocks: int) -> None:
        super().__init__()
        self.conv = residual_blocks(in_channels, out_channels, n_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.conv:
            x = block(x)
        return x


class Encoder(nn.Module):
    """Input BatchNorm then stages that double the channels and halve time and mel with 2×2 average pooling.

    Returns the pooled output and the un-pooled output of every stage (the U-Net skips).
    """

    def __init__(self, config: RmvpeConfig) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(config.in_channels, momentum=BATCH_NORM_MOMENTUM)
        widths = [config.in_channels] + [config.en_out_channels * 2**i for i in range(config.en_de_layers)]
        self.layers = nn.ModuleList(ResidualStage(a, b, config.n_blocks) for a, b in zip(widths[:-1], widths[1:]))
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.bn(x)
        skips = []
        for stage in self.layers:
            x = stage(x)
            skips.append(x)
            x = self.pool(x)
        return x, skips


class Intermediate(nn.Module):
    """Stages at the bottom of the U-Net; the first doubles the channels, none pools."""

    def __init__(self, config: RmvpeConfig) -> None:
        super().__init__()
        bottom = config.en_out_channels * 2**config.en_de_layers
        widths = [bottom // 2] + [bottom] * config.inter_layers
        self.layers = nn.ModuleList(ResidualStage(a, b, config.n_blocks) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.layers:
            x = stage(x)
        return x


class UpsampleStage(nn.Module):
    """Transposed conv (×2 in time and mel) + BN + ReLU, concatenation with the skip, residual stage.

    ``(B, C, T, F)`` and skip ``(B, C/2, 2T, 2F)`` → ``(B, C/2, 2T, 2F)``.
    """

    def __init__(self, in_channels: int, n_blocks: int) -> None:
        super().__init__()
        out_channels = in_channels // 2
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=BATCH_NORM_MOMENTUM),
            nn.ReLU(inplace=True),
        )
        self.conv2 = residual_blocks(2 * out_channels, out_channels, n_blocks)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self.conv1(x), skip), dim=1)
        for block in self.conv2:
            x = block(x)
        return x


class Decoder(nn.Module):
    """Upsampling stages that halve the channels back to ``en_out_channels``."""

    def __init__(self, config: RmvpeConfig) -> None:
        super().__init__()
        bottom = config.en_out_channels * 2**config.en_de_layers
        self.layers = nn.ModuleList(UpsampleStage(bottom // 2**i, config.n_blocks) for i in range(config.en_de_layers))

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for stage, skip in zip(self.layers, reversed(skips)):
            x = stage(x, skip)
        return x


class DeepUNet(nn.Module):
    """Encoder → intermediate → decoder; ``(B, in, T, F) → (B, en_out_channels, T, F)``."""

    def __init__(self, config: RmvpeConfig) -> None:
        super().__init__()
        self.encoder = Encoder(config)
        self.intermediate = Intermediate(config)
        self.decoder = Decoder(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encoder(x)
        return self.decoder(self.intermediate(x), skips)


class BiGRU(nn.Module):
    """Bidirectional batch-first GRU returning only the output sequence ``(B, T, 2·hidden)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.gru = nn.GRU(input_size, hidden_size, num_layers=num_layers, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class E2E(nn.Module):
    """RMVPE: log-mel ``(B, n_mels, T)`` → pitch salience ``(B, T, n_classes)`` in [0, 1].

    ``T`` must be a multiple of ``2**en_de_layers`` (32 for RVC's file); the
    caller pads and crops (see :class:`infer.f0.rmvpe.RmvpePredictor`).
    Works in the dtype of its parameters (float32, or float16 on GPUs).
    """

    def __init__(self, config: RmvpeConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or RmvpeConfig()
        if config.n_mels % 2**config.en_de_layers:
            raise ValueError(f"n_mels={config.n_mels} must be divisible by 2**en_de_layers={2**config.en_de_layers}")
        if config.n_gru < 1:
            raise ValueError("RMVPE without a GRU (n_gru=0) is not supported; RVC's model has one BiGRU layer")
        self.unet = DeepUNet(config)
        self.cnn = nn.Conv2d(config.en_out_channels, config.cnn_channels, 3, padding=1)
        self.fc = nn.Sequential(
            BiGRU(config.cnn_channels * config.n_mels, config.gru_hidden, config.n_gru),
            nn.Linear(2 * config.gru_hidden, config.n_classes),
            nn.Dropout(0.25),
            nn.Sigmoid(),
        )

    @property
    def frame_multiple(self) -> int:
        """The number of frames must be a multiple of this (the U-Net pools it that often)."""
        return 2**self.config.en_de_layers

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = mel.transpose(-1, -2).unsqueeze(1)  # (B, 1, T, n_mels)
        x = self.cnn(self.unet(x))  # (B, 3, T, n_mels)
        x = x.transpose(1, 2).flatten(-2)  # (B, T, 3·n_mels)
        return self.fc(x)
