"""Our weight norm: RVC's state-dict names, torch's numerics, no per-call state."""

from __future__ import annotations

import copy
import pickle
import threading

import pytest
import torch
from torch import nn

from infer.models.weight_norm import (
    apply_weight_norm,
    has_weight_norm,
    remove_all_weight_norm,
    remove_weight_norm,
    rename_parametrized_keys,
)


@pytest.mark.parametrize(
    "make, shape, dim",
    [
        (lambda: nn.Conv1d(4, 6, 3), (2, 4, 12), 0),
        (lambda: nn.ConvTranspose1d(6, 4, 4, 2), (2, 6, 12), 0),
        (lambda: nn.Conv2d(2, 3, (5, 1)), (1, 2, 9, 3), 0),
        (lambda: nn.Linear(5, 7), (3, 5), 0),
        (lambda: nn.Conv1d(4, 4, 8, padding=4, groups=2), (1, 4, 20), 2),
    ],
)
def test_matches_torch_parametrization(make, shape, dim):
    torch.manual_seed(0)
    ours, theirs = make(), make()
    theirs.load_state_dict(ours.state_dict())
    apply_weight_norm(ours, dim=dim)
    nn.utils.parametrizations.weight_norm(theirs, dim=dim)
    assert list(ours.state_dict()) == ["bias", "weight_g", "weight_v"]
    ours.load_state_dict(rename_parametrized_keys(theirs.state_dict()))
    x = torch.randn(*shape)
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)
    ours(x).square().sum().backward()
    assert ours.weight_g.grad is not None and ours.weight_v.grad is not None


def test_remove_folds_the_weight():
    conv = apply_weight_norm(nn.Conv1d(3, 5, 3))
    with torch.no_grad():
        conv.weight_g.mul_(1.7)
    x = torch.randn(1, 3, 10)
    before = conv(x)
    assert has_weight_norm(conv) and remove_all_weight_norm(nn.Sequential(conv)) == 1
    assert type(conv) is nn.Conv1d and set(conv.state_dict()) == {"weight", "bias"}
    assert torch.allclose(conv(x), before, atol=1e-6)
    with pytest.raises(ValueError, match="no weight norm"):
        remove_weight_norm(conv)
    assert type(conv) is nn.Conv1d


def test_copy_pickle_and_threads():
    conv = apply_weight_norm(nn.Conv1d(3, 5, 3))
    x = torch.randn(1, 3, 50)
    expected = conv(x)
    assert torch.equal(copy.deepcopy(conv)(x), expected)
    assert torch.equal(pickle.loads(pickle.dumps(conv))(x), expected)
    results, errors = [], []

    def work():
        try:
            for _ in range(200):
                results.append(torch.equal(conv(x), expected))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(results) and len(results) == 800


def test_rename_keeps_other_keys_in_order():
    state = {"a.bias": 1, "a.parametrizations.weight.original0": 2, "a.parametrizations.weight.original1": 3, "b": 4}
    assert list(rename_parametrized_keys(state)) == ["a.bias", "a.weight_g", "a.weight_v", "b"]
