"""Multi-period discriminator: structure, RVC key names, outputs and gradients."""

from __future__ import annotations

import pytest
import torch

from infer.models.discriminators import DiscriminatorP, MultiPeriodDiscriminator, build_discriminator
from infer.safe_load import load_torch_file


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _small(version: str = "v2") -> MultiPeriodDiscriminator:
    torch.manual_seed(0)
    return build_discriminator(version, channel_divisor_s=16, channel_divisor_p=32)


@pytest.mark.parametrize(
    ("version", "periods", "n_params"),
    [("v1", (2, 3, 5, 7, 11, 17), 54_968_286), ("v2", (2, 3, 5, 7, 11, 17, 23, 37), 71_410_594)],
)
def test_full_size_structure(version, periods, n_params):
    with torch.device("meta"):  # structure only, no memory
        disc = build_discriminator(version)
    assert disc.periods == periods
    assert [getattr(d, "period", None) for d in disc.discriminators] == [None, *periods]
    assert sum(p.numel() for p in disc.parameters()) == n_params  # spec §5.10: ~55 M (v1), ~71.4 M (v2)
    state = disc.state_dict()
    assert len(state) == 3 * 7 * (len(periods) + 1) - 3 * len(periods)  # S: 7 convs, P: 6 convs
    assert state["discriminators.0.convs.1.weight_v"].shape == (64, 4, 41)
    assert state["discriminators.0.conv_post.weight_g"].shape == (1, 1, 1)
    assert state[f"discriminators.{len(periods)}.convs.4.weight_v"].shape == (1024, 1024, 5, 1)
    assert not any(k.endswith(".weight") for k in state)  # everything is weight-normed


def test_reduced_widths_keep_groups_and_kernels():
    disc = build_discriminator("v2", channel_divisor_s=4, channel_divisor_p=16)
    state = disc.state_dict()
    assert state["discriminators.0.convs.0.weight_v"].shape == (4, 1, 15)
    assert state["discriminators.0.convs.4.weight_v"].shape == (256, 1, 41)  # 256 groups kept
    assert state["discriminators.3.convs.1.weight_v"].shape == (8, 2, 5, 1)
    assert state["discriminators.8.conv_post.weight_v"].shape == (1, 64, 3, 1)
    with pytest.raises(ValueError, match="divisor"):
        build_discriminator("v1", channel_divisor_p=3)
    with pytest.raises(ValueError, match="v3"):
        build_discriminator("v3")


def test_forward_returns_rvc_lists_for_any_length():
    disc = _small("v1")
    y, y_hat = torch.randn(2, 1, 1001), torch.randn(2, 1, 1001)  # 1001 is no multiple of any period
    y_d_rs, y_d_gs, fmap_rs, fmap_gs = disc(y, y_hat)
    assert len(y_d_rs) == len(y_d_gs) == len(fmap_rs) == len(fmap_gs) == 7
    assert [len(f) for f in fmap_rs] == [7] + [6] * 6
    for logits, fmaps in zip(y_d_rs, fmap_rs):
        assert logits.dim() == 2 and logits.shape[0] == 2
        assert logits.shape[1] == fmaps[-1][0].numel()
    assert fmap_rs[1][0].shape[-1] == 2 and fmap_rs[6][0].shape[-1] == 17  # folded by period
    assert not torch.equal(y_d_rs[0], y_d_gs[0])


def test_period_fold_reflect_pads():
    disc = DiscriminatorP(3, channel_divisor=32)
    x = torch.randn(1, 1, 10)
    seen = {}
    disc.convs[0].register_forward_pre_hook(lambda _m, args: seen.update(x=args[0]))
    disc(x)
    folded = seen["x"]
    assert folded.shape == (1, 1, 4, 3)
    assert torch.equal(folded.flatten()[:10], x.flatten()) and folded.flatten()[10] == x[0, 0, 8]


def test_backward_reaches_every_parameter():
    disc = _small("v2")
    y, y_hat = torch.randn(1, 1, 800), torch.randn(1, 1, 800, requires_grad=True)
    y_d_rs, y_d_gs, fmap_rs, fmap_gs = disc(y, y_hat)
    loss = sum(((1 - r) ** 2).mean() + (g**2).mean() for r, g in zip(y_d_rs, y_d_gs))
    loss = loss + sum((a - b).abs().mean() for fr, fg in zip(fmap_rs, fmap_gs) for a, b in zip(fr, fg))
    loss.backward()
    assert y_hat.grad is not None and y_hat.grad.abs().sum() > 0
    assert [n for n, p in disc.named_parameters() if p.grad is None] == []


def test_state_dict_round_trip(tmp_path):
    disc = _small("v2")
    torch.save(disc.state_dict(), tmp_path / "D.pth")
    torch.manual_seed(1)
    other = build_discriminator("v2", channel_divisor_s=16, channel_divisor_p=32)
    y = torch.randn(1, 1, 640)
    assert not torch.equal(disc(y, y)[0][0], other(y, y)[0][0])
    other.load_state_dict(load_torch_file(tmp_path / "D.pth"), strict=True)
    for a, b in zip(disc(y, y)[0], other(y, y)[0]):
        assert torch.equal(a, b)
