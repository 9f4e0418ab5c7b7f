"""Relative-position self-attention Transformer encoder used by RVC's content encoder (spec §5.3).

Layout is VITS's ``attentions.Encoder``: post-norm layers of multi-head
attention with learned relative position embeddings (window ±``window_size``,
shared by all heads), then a two-conv feed-forward block.  Tensors are
(B, C, T) with a float mask (B, 1, T).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from infer.models.modules import ChannelLayerNorm


class MultiHeadAttention(nn.Module):
    """Multi-head attention with 1×1-conv projections ``conv_q/k/v/o``.

    With ``window_size`` set it adds relative-position logits and values
    (``emb_rel_k``/``emb_rel_v``, shape (1, 2·window+1, C/heads)); that mode is
    for self-attention only.  ``x`` (B, C, T_t), ``c`` (B, C, T_s),
    ``attn_mask`` (B, 1, T_t, T_s) → (B, out_channels, T_t).
    """

    def __init__(
        self,
        channels: int,
        out_channels: int,
        n_heads: int,
        p_dropout: float = 0.0,
        window_size: int | None = None,
    ) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels {channels} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        self.drop = nn.Dropout(float(p_dropout))
        if window_size is not None:
            rel_std = self.k_channels**-0.5
            self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * rel_std)
            self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * rel_std)
        for conv in (self.conv_q, self.conv_k, self.conv_v):
            nn.init.xavier_uniform_(conv.weight)

    def forward(self, x: torch.Tensor, c: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        query, key, value = self.conv_q(x), self.conv_k(c), self.conv_v(c)
        batch, channels, t_s = key.shape
        t_t = query.shape[2]
        # [b, d, t] -> [b, heads, t, d_k]
        query = query.view(batch, self.n_heads, self.k_channels, t_t).transpose(2, 3)
        key = key.view(batch, self.n_heads, self.k_channels, t_s).transpose(2, 3)
        value = value.view(batch, self.n_heads, self.k_channels, t_s).transpose(2, 3)

        query = query / math.sqrt(self.k_channels)
        scores = torch.matmul(query, key.transpose(-2, -1))
        if self.window_size is not None:
            if t_s != t_t:
                raise ValueError("relative attention is only available for self-attention")
            _add_relative_logits(scores, query, self.emb_rel_k, self.window_size)
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask == 0, -1e4)
        p_attn = self.drop(F.softmax(scores, dim=-1))  # [b, heads, t_t, t_s]
        output = torch.matmul(p_attn, value)
        if self.window_size is not None:
            output = output + torch.matmul(_relative_weights(p_attn, self.window_size), self.emb_rel_v)
        output = output.transpose(2, 3).contiguous().view(batch, channels, t_t)
        return self.conv_o(output)


# VITS pads the 2·window+1 relative embeddings with zeros to all 2·t−1 offsets and
# converts between offset- and position-indexed matrices with pad-and-reshape
# tricks, which costs O(t²·d) time and several (b, h, t, 2t) tensors.  Only the
# 2·window+1 diagonals around the main one are non-zero, so the two helpers
# below touch just those: the same sums without the zero terms.


def _offsets(window: int, length: int) -> range:
    """Relative offsets d = j − i inside the window for a sequence of ``length``."""
    reach = min(window, length - 1)
    return range(-reach, reach + 1)


def _add_relative_logits(scores: torch.Tensor, query: torch.Tensor, emb_rel_k: torch.Tensor, window: int) -> None:
    """In place: scores[..., i, i+d] += query_i · emb_rel_k[d + window] for |d| ≤ window.

    ``scores`` [b, h, t, t], ``query`` [b, h, t, d_k] (already scaled), ``emb_rel_k`` [1, 2·window+1, d_k].
    """
    length = scores.shape[-1]
    rel_logits = torch.matmul(query, emb_rel_k.transpose(-2, -1))  # [b, h, t, 2·window+1]
    for offset in _offsets(window, length):
        rows = slice(max(0, -offset), length - max(0, offset))
        scores.diagonal(offset, -2, -1).add_(rel_logits[..., rows, offset + window])


def _relative_weights(p_attn: torch.Tensor, window: int) -> torch.Tensor:
    """[b, h, t, t] attention weights → [b, h, t, 2·window+1]: entry (i, d + window) = p_attn[i, i+d], 0 outside."""
    length = p_attn.shape[-1]
    band = p_attn.new_zeros(*p_attn.shape[:-1], 2 * window + 1)
    for offset in _offsets(window, length):
        rows = slice(max(0, -offset), length - max(0, offset))
        band[..., rows, offset + window] = p_attn.diagonal(offset, -2, -1)
    return band


class FFN(nn.Module):
    """conv_1 (kernel k, "same" padding) → ReLU → conv_2 (kernel k), masked before each conv and at the end."""

    def __init__(
        self, in_channels: int, out_channels: int, filter_channels: int, kernel_size: int, p_dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.conv_1 = nn.Conv1d(in_channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, out_channels, kernel_size)
        self.drop = nn.Dropout(float(p_dropout))

    def _same_pad(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size == 1:
            return x
        return F.pad(x, [(self.kernel_size - 1) // 2, self.kernel_size // 2, 0, 0, 0, 0])

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(self._same_pad(x * x_mask)))
        x = self.conv_2(self._same_pad(self.drop(x) * x_mask))
        return x * x_mask


class Encoder(nn.Module):
    """Post-norm Transformer encoder: per layer x = LN(x + MHA(x)); x = LN(x + FFN(x)).

    ``x`` (B, hidden, T), ``x_mask`` (B, 1, T) float → (B, hidden, T), masked.
    """

    def __init__(
        self,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int = 1,
        p_dropout: float = 0.0,
        window_size: int = 10,
    ) -> None:
        super().__init__()
        self.n_layers = int(n_layers)
        self.drop = nn.Dropout(float(p_dropout))
        self.attn_layers = nn.ModuleList()
        self.norm_layers_1 = nn.ModuleList()
        self.ffn_layers = nn.ModuleList()
        self.norm_layers_2 = nn.ModuleList()
        for _ in range(self.n_layers):
            self.attn_layers.append(
                MultiHeadAttention(hidden_channels, hidden_channels, n_heads, p_dropout, window_size=window_size)
            )
            self.norm_layers_1.append(ChannelLayerNorm(hidden_channels))
            self.ffn_layers.append(FFN(hidden_channels, hidden_channels, filter_channels, kernel_size, p_dropout))
            self.norm_layers_2.append(ChannelLayerNorm(hidden_channels))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        # Without padding frames the mask would change nothing; skipping it saves two passes per layer.
        attn_mask = None if bool(x_mask.all()) else x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)
        x = x * x_mask
        for attn, norm_1, ffn, norm_2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = norm_1(x + self.drop(attn(x, x, attn_mask)))
            x = norm_2(x + self.drop(ffn(x, x_mask)))
        return x * x_mask
