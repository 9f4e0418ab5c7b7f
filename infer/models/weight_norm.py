"""Weight normalisation with RVC's state-dict names.

RVC (and fairseq) use the legacy ``torch.nn.utils.weight_norm``, which stores a
weight-normed layer as ``<name>.weight_g`` (the gain) and ``<name>.weight_v``
(the direction).  Newer torch code uses parametrizations, whose keys are
``<name>.parametrizations.weight.original0/1``.  We keep the legacy names as
our native layout, with a small implementation of our own so that nothing here
depends on a deprecated torch API, and translate the parametrization names on
load (:func:`rename_parametrized_keys`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

_PARAM_G = ".parametrizations.weight.original0"
_PARAM_V = ".parametrizations.weight.original1"


def _norm_except_dim(v: torch.Tensor, dim: int) -> torch.Tensor:
    """L2 norm of ``v`` over every dim except ``dim`` (kept with size 1 elsewhere)."""
    if dim == -1:
        return v.norm()
    dims = [d for d in range(v.dim()) if d != dim]
    return v.norm(p=2, dim=dims, keepdim=True)


class _WeightNormHook:
    """Computes ``weight`` before each forward and drops it afterwards.

    Dropping it keeps the module deep-copyable and picklable (a computed,
    non-leaf tensor in ``__dict__`` is neither).
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def __call__(self, module: nn.Module, _inputs: object) -> None:
        module.weight = torch._weight_norm(module.weight_v, module.weight_g, self.dim)

    @staticmethod
    def drop(module: nn.Module, _inputs: object, _output: object) -> None:
        module.__dict__.pop("weight", None)


def apply_weight_norm(module: nn.Module, dim: int = 0) -> nn.Module:
    """Reparametrise ``module.weight`` as ``weight_g * weight_v / ||weight_v||``.

    ``dim`` is the dimension kept by the norm (0 for Conv/Linear output
    channels; fairseq's positional conv uses 2).  Returns ``module``.
    """
    weight = module.weight
    del module._parameters["weight"]
    module.register_parameter("weight_g", nn.Parameter(_norm_except_dim(weight, dim).detach()))
    module.register_parameter("weight_v", nn.Parameter(weight.detach()))
    hook = _WeightNormHook(dim)
    handles = (module.register_forward_pre_hook(hook), module.register_forward_hook(hook.drop))
    module._rvc_weight_norm = (hook, handles)
    return module


def has_weight_norm(module: nn.Module) -> bool:
    return hasattr(module, "_rvc_weight_norm")


def remove_weight_norm(module: nn.Module) -> nn.Module:
    """Fold ``weight_g``/``weight_v`` into a plain ``weight`` (for fast inference)."""
    hook, handles = module._rvc_weight_norm
    with torch.no_grad():
        weight = torch._weight_norm(module.weight_v, module.weight_g, hook.dim)
    for handle in handles:
        handle.remove()
    del module._rvc_weight_norm
    del module._parameters["weight_g"]
    del module._parameters["weight_v"]
    module.__dict__.pop("weight", None)
    module.weight = nn.Parameter(weight.detach())
    return module


def remove_all_weight_norm(model: nn.Module) -> int:
    """Remove weight norm from every sub-module that has it; returns how many."""
    count = 0
    for sub in model.modules():
        if has_weight_norm(sub):
            remove_weight_norm(sub)
            count += 1
    return count


def rename_parametrized_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map ``x.parametrizations.weight.original0/1`` to ``x.weight_g/weight_v``.

    Files saved by code built on ``torch.nn.utils.parametrizations.weight_norm``
    use those names; RVC files and ours use the legacy ones.  Other keys pass
    through unchanged, in order.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(_PARAM_G):
            key = key[: -len(_PARAM_G)] + ".weight_g"
        elif key.endswith(_PARAM_V):
            key = key[: -len(_PARAM_V)] + ".weight_v"
        out[key] = value
    return out
