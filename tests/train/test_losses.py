"""Training losses against values worked out by hand (spec §6.4)."""

from __future__ import annotations

import math

import pytest
import torch

from train.losses import discriminator_loss, feature_matching_loss, generator_adversarial_loss, kl_loss, mel_loss


def test_discriminator_loss_by_hand():
    real = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5]])]
    fake = [torch.tensor([[0.0, 2.0]]), torch.tensor([[-1.0]])]
    total, real_terms, fake_terms = discriminator_loss(real, fake)
    # sub-D 0: mean((1-1)², (1-0)²) = 0.5, mean(0², 2²) = 2; sub-D 1: (1-0.5)² = 0.25, (-1)² = 1
    assert [t.item() for t in real_terms] == [0.5, 0.25]
    assert [t.item() for t in fake_terms] == [2.0, 1.0]
    assert total.item() == pytest.approx(3.75)


def test_generator_adversarial_loss_by_hand():
    total, terms = generator_adversarial_loss([torch.tensor([[0.0, 2.0]]), torch.tensor([[3.0]])])
    assert [t.item() for t in terms] == [1.0, 4.0]
    assert total.item() == 5.0


def test_feature_matching_is_doubled_and_stops_gradient_to_real():
    real = [[torch.tensor([1.0, 2.0], requires_grad=True)], [torch.tensor([[0.0]], requires_grad=True)]]
    fake = [[torch.tensor([2.0, 0.0], requires_grad=True)], [torch.tensor([[0.5]], requires_grad=True)]]
    loss = feature_matching_loss(real, fake)
    # 2 · (mean(|1-2|, |2-0|) + |0-0.5|) = 2 · (1.5 + 0.5)
    assert loss.item() == pytest.approx(4.0)
    loss.backward()
    assert real[0][0].grad is None and fake[0][0].grad is not None
    torch.testing.assert_close(fake[0][0].grad, torch.tensor([2 * 0.5, -2 * 0.5]))


def test_mel_loss_is_weighted_l1():
    a = torch.zeros(1, 2, 2)
    b = torch.tensor([[[1.0, -1.0], [0.0, 2.0]]])
    assert mel_loss(a, b, 45).item() == pytest.approx(45 * 1.0)


def test_kl_loss_by_hand_with_mask():
    # one channel, three frames; the last frame is masked out
    z_p = torch.tensor([[[1.0, 0.0, 9.0]]])
    logs_q = torch.tensor([[[0.0, 0.5, 9.0]]])
    m_p = torch.tensor([[[0.0, 1.0, 9.0]]])
    logs_p = torch.tensor([[[0.0, math.log(2.0), 9.0]]])
    mask = torch.tensor([[[1.0, 1.0, 0.0]]])
    frame0 = 0 - 0 - 0.5 + 0.5 * 1.0 * 1.0
    frame1 = math.log(2.0) - 0.5 - 0.5 + 0.5 * 1.0 * math.exp(-2 * math.log(2.0))
    expected = (frame0 + frame1) / 2
    assert kl_loss(z_p, logs_q, m_p, logs_p, mask).item() == pytest.approx(expected, rel=1e-6)
    assert kl_loss(z_p, logs_q, m_p, logs_p, mask, c_kl=2.0).item() == pytest.approx(2 * expected, rel=1e-6)


def test_kl_divides_by_frames_not_channels():
    """RVC sums over channels and divides by the number of unmasked frames only."""
    z = torch.ones(2, 4, 5)
    zeros = torch.zeros(2, 4, 5)
    mask = torch.ones(2, 1, 5)
    # z_p = m_p, logs_p = 0, logs_q = -1: each element is 0 + 1 - 0.5 = 0.5; 4 channels → 2 per frame
    value = kl_loss(z, -torch.ones(2, 4, 5), zeros + 1, zeros, mask)
    assert value.item() == pytest.approx(2.0)


def test_losses_are_float32_from_half_inputs():
    half = [torch.tensor([[0.5]], dtype=torch.float16)]
    assert discriminator_loss(half, half)[0].dtype == torch.float32
    assert generator_adversarial_loss(half)[0].dtype == torch.float32
    assert feature_matching_loss([half], [half]).dtype == torch.float32
    assert mel_loss(half[0], half[0], 45).dtype == torch.float32
