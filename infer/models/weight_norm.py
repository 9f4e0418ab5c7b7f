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


_WEIGHT_NORM_CLASSES: dict[type, type] = {}


def _weight_norm_class(base: type) -> type:
    """A subclass of ``base`` whose ``weight`` is computed from ``weight_g``/``weight_v`` on access.

    Computing it in a property keeps the module free of per-call state, so one
    module can serve several threads at once.  The class is registered in this
    module under a stable name so that such modules can still be pickled.
    """
    cls = _WEIGHT_NORM_CLASSES.get(base)
    if cls is None:
        name = f"WeightNorm{base.__name__}"

        def weight(self: nn.Module) -> torch.Tensor:
            return torch._weight_norm(self.weight_v, self.weight_g, self._weight_norm_dim)

        cls = type(name, (base,), {"weight": property(weight), "__module__": __name__})
        globals()[name] = cls
        _WEIGHT_NORM_CLASSES[base] = cls
    return cls


def apply_weight_norm(module: nn.Module, dim: int = 0) -> nn.Module:
    """Reparametrise ``module.weight`` as ``weight_g * weight_v / ||weight_v||``.

    ``dim`` is the dimension kept by the norm (0 for Conv/Linear output
    channels; fairseq's positional conv uses 2).  Returns ``module``.
    """
    weight = module.weight
    del module._parameters["weight"]
    module.register_parameter("weight_g", nn.Parameter(_norm_except_dim(weight, dim).detach()))
    module.register_parameter("weight_v", nn.Parameter(weight.detach()))
    module._weight_norm_dim = dim
    module.__class__ = _weight_norm_class(type(module))
    return module


def has_weight_norm(module: nn.Module) -> bool:
    return type(module) in _WEIGHT_NORM_CLASSES.values()


def remove_weight_norm(module: nn.Module) -> nn.Module:
    """Fold ``weight_g``/``weight_v`` into a plain ``weight`` (for fast inference)."""
    if not has_weight_norm(module):
        raise ValueError(f"{type(module).__name__} has no weight norm to remove")
    with torch.no_grad():
        weight = module.weight.detach().clone()
    module.__class__ = type(module).__mro__[1]
    del module._parameters["weight_g"]
    del module._parameters["weight_v"]
    del module._weight_norm_dim
    module.weight = nn.Parameter(weight)
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
        for suffix, legacy in ((_PARAM_G, "weight_g"), (_PARAM_V, "weight_v")):
            if key == suffix[1:]:
                key = legacy
            elif key.endswith(suffix):
                key = key[: -len(suffix)] + "." + legacy
        out[key] = value
    return out
