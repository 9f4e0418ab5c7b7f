"""Tiny random synthesizers for tests, demos and the ``tiny-random`` model name."""

from __future__ import annotations

from typing import Any

import torch

from infer.models.config import tiny_config
from infer.models.synthesizer import Synthesizer


def randomize_parameters(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Give every parameter of ``model`` random, non-trivial values drawn from ``generator``.

    Unlike a fresh initialisation this leaves no path inert: weight-norm gains
    differ from ‖v‖ (factor U[0.5, 1.5)), the flow's ``post`` convs are not
    zero, norms are not exactly 1/0 and biases are non-zero.  Scales keep
    activations moderate (weights ~ N(0, 1/fan_in)).
    """
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, param in params.items():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "weight_g":
                continue  # set from its weight_v below
            if leaf == "gamma":
                values = 1 + 0.1 * torch.randn(param.shape, generator=generator)
            elif param.dim() == 1:
                values = 0.1 * torch.randn(param.shape, generator=generator)
            elif leaf.startswith("emb_rel"):
                values = torch.randn(param.shape, generator=generator) * param.shape[-1] ** -0.5
            else:
                values = torch.randn(param.shape, generator=generator) * param[0].numel() ** -0.5
            param.copy_(values)
        for name, param in params.items():
            if name.endswith(".weight_g"):
                v = params[name[: -len("_g")] + "_v"]
                norm = v.flatten(1).norm(dim=1).view(param.shape)
                param.copy_(norm * (0.5 + torch.rand(param.shape, generator=generator)))


def tiny_synthesizer(
    version: str = "v2",
    sample_rate: int | str = 40000,
    use_f0: bool = True,
    seed: int = 0,
    *,
    with_posterior: bool = True,
    **overrides: Any,
) -> Synthesizer:
    """A very small :class:`Synthesizer` (``infer.models.config.tiny_config``) with seeded random weights.

    ``overrides`` change config fields (e.g. ``segment_size=8``).  The same
    arguments always give the same weights; torch's global RNG is not used
    for them.  Returned in eval mode, float32, on the CPU.
    """
    cfg = tiny_config(version, sample_rate, use_f0, **overrides)
    model = Synthesizer.from_config(cfg, with_posterior=with_posterior)
    randomize_parameters(model, torch.Generator().manual_seed(seed))
    return model.eval()
