"""A small random RMVPE file in the format of RVC's ``assets/rmvpe/rmvpe.pt``."""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from infer.models.rmvpe import E2E, RmvpeConfig

SALIENCE_HEAD_GAIN = 4.0  # spreads the sigmoid outputs so that thresholds and argmax matter


def tiny_rmvpe_state_dict(seed: int = 0, en_out_channels: int = 2) -> OrderedDict[str, torch.Tensor]:
    """Random weights for ``E2E(RmvpeConfig(en_out_channels=...))`` as RVC stores them.

    Floating tensors are float16, ``num_batches_tracked`` is int64 0, and the
    BatchNorm statistics and affine parameters are non-trivial so that the
    eval-mode normalisation is exercised.  Deterministic for a given seed; the
    global torch RNG is left untouched.
    """
    generator = torch.Generator().manual_seed(seed)
    model = E2E(RmvpeConfig(en_out_channels=en_out_channels))
    with torch.no_grad():
        for module in model.modules():
            _randomise(module, generator)
        model.fc[1].weight.mul_(SALIENCE_HEAD_GAIN)
    return OrderedDict(
        (name, value.half() if value.is_floating_point() else value.clone())
        for name, value in model.state_dict().items()
    )


def _uniform(shape: torch.Size, bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


def _randomise(module: nn.Module, generator: torch.Generator) -> None:
    if isinstance(module, nn.BatchNorm2d):
        n = module.num_features
        module.weight.copy_(0.5 + torch.rand(n, generator=generator))
        module.bias.copy_(0.1 * torch.randn(n, generator=generator))
        module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
        module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
    elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        weight = module.weight
        fan_in = weight[0].numel() if isinstance(module, (nn.Conv2d, nn.Linear)) else weight[:, 0].numel()
        bound = math.sqrt(3.0 / fan_in)  # unit output variance for unit input variance
        weight.copy_(_uniform(weight.shape, bound, generator))
        if module.bias is not None:
            module.bias.copy_(_uniform(module.bias.shape, 0.1, generator))
    elif isinstance(module, nn.GRU):
        bound = 1.0 / math.sqrt(module.hidden_size)
        for parameter in module.parameters():
            parameter.copy_(_uniform(parameter.shape, bound, generator))


def save_tiny_rmvpe(path: str | Path, seed: int = 0, en_out_channels: int = 2) -> Path:
    """Write :func:`tiny_rmvpe_state_dict` to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_rmvpe_state_dict(seed, en_out_channels), path)
    return path
