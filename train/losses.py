"""The VITS/HiFi-GAN training losses RVC uses (spec §6.4), as pure functions.

Every loss is computed in float32, whatever the autocast dtype of its inputs.
Discriminator outputs are lists with one entry per sub-discriminator; feature
maps are lists (per sub-discriminator) of lists (per layer) of tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

FEATURE_MATCHING_SCALE = 2.0  # RVC doubles the feature-matching sum


def discriminator_loss(
    real_scores: Sequence[torch.Tensor], fake_scores: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """LSGAN discriminator loss Σ_k [mean((1 − D_k(y))²) + mean(D_k(ŷ)²)].

    Returns the total (0-d float32) and the per-sub-discriminator real and
    fake terms (lists of 0-d tensors).
    """
    real_terms = [torch.mean((1 - real.float()) ** 2) for real in real_scores]
    fake_terms = [torch.mean(fake.float() ** 2) for fake in fake_scores]
    total = torch.stack([r + f for r, f in zip(real_terms, fake_terms)]).sum()
    return total, real_terms, fake_terms


def generator_adversarial_loss(fake_scores: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """LSGAN generator loss Σ_k mean((1 − D_k(ŷ))²); returns the total and the per-k terms."""
    terms = [torch.mean((1 - fake.float()) ** 2) for fake in fake_scores]
    return torch.stack(terms).sum(), terms


def feature_matching_loss(
    real_maps: Sequence[Sequence[torch.Tensor]], fake_maps: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """2 · Σ_k Σ_layers mean|f_real − f_fake|; the real maps are detached (no gradient to them)."""
    terms = [
        torch.mean(torch.abs(real.float().detach() - fake.float()))
        for real_layers, fake_layers in zip(real_maps, fake_maps)
        for real, fake in zip(real_layers, fake_layers)
    ]
    return torch.stack(terms).sum() * FEATURE_MATCHING_SCALE


def mel_loss(real_mel: torch.Tensor, fake_mel: torch.Tensor, c_mel: float) -> torch.Tensor:
    """L1 between log-mels (B, n_mels, T), times ``c_mel`` (45 in RVC)."""
    return F.l1_loss(real_mel.float(), fake_mel.float()) * c_mel


def kl_loss(
    z_p: torch.Tensor,
    logs_q: torch.Tensor,
    m_p: torch.Tensor,
    logs_p: torch.Tensor,
    mask: torch.Tensor,
    c_kl: float = 1.0,
) -> torch.Tensor:
    """VITS KL between the flowed posterior sample and the prior, averaged over unmasked frames.

    ``z_p``, ``logs_q``, ``m_p``, ``logs_p`` (B, C, T); ``mask`` (B, 1, T).
    Value: c_kl · Σ[(logs_p − logs_q − ½ + ½(z_p − m_p)²·e^(−2·logs_p))·mask] / Σmask.
    """
    z_p, logs_q, m_p, logs_p, mask = (t.float() for t in (z_p, logs_q, m_p, logs_p, mask))
    kl = logs_p - logs_q - 0.5
    kl = kl + 0.5 * ((z_p - m_p) ** 2) * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * mask) / torch.sum(mask) * c_kl
