"""HuBERT / ContentVec network (the content encoder), inference only.

Parameter names follow fairseq's ``HubertModel`` so that RVC's
``hubert_base.pt`` state dict loads as is.  Every width and layer count comes
from :class:`HubertConfig`; nothing here is tied to the base size.  Reading
files (fairseq and Hugging Face formats) lives in :mod:`infer.content_formats`.

Audio is 16 kHz.  With the standard conv front end (receptive field 400
samples, stride 320) a waveform of N samples gives (N - 400) // 320 + 1 frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from infer.models.weight_norm import apply_weight_norm

ConvSpec = tuple[tuple[int, int, int], ...]
"""Conv front end as ``(channels, kernel, stride)`` per block."""

BASE_CONV_LAYERS: ConvSpec = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
"""hubert_base's conv front end: receptive field 400 samples, stride 320."""


@dataclass(frozen=True)
class HubertConfig:
    """Sizes of a HuBERT-base-style encoder (post-LN, GroupNorm front end).

    ``final_dim`` is the width of ``final_proj`` (0: the model has none);
    ``num_classes`` the rows of the training-only ``label_embs_concat``
    (0: absent); ``mask_emb`` whether the training-only mask embedding exists.
    The defaults are RVC's ``hubert_base.pt``.
    """

    conv_layers: ConvSpec = BASE_CONV_LAYERS
    conv_bias: bool = False
    embed_dim: int = 768
    ffn_dim: int = 3072
    num_layers: int = 12
    num_heads: int = 12
    final_dim: int = 256
    conv_pos: int = 128
    conv_pos_groups: int = 16
    num_classes: int = 0
    mask_emb: bool = True
    use_post_extract_proj: bool = True
    layer_norm_eps: float = 1e-5
    required_seq_len_multiple: int = 2

    def __post_init__(self) -> None:
        problems = []
        if self.embed_dim % self.num_heads:
            problems.append(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.embed_dim % self.conv_pos_groups:
            problems.append(f"embed_dim {self.embed_dim} is not divisible by conv_pos_groups {self.conv_pos_groups}")
        if not self.use_post_extract_proj and self.conv_dim != self.embed_dim:
            problems.append("without post_extract_proj the conv width must equal embed_dim")
        if self.num_layers < 1 or self.ffn_dim < 1 or self.final_dim < 0 or self.num_classes < 0:
            problems.append("layer count and widths must be positive")
        if self.num_classes and not self.final_dim:
            problems.append("label embeddings need a final_proj width")
        if problems:
            raise ValueError("Invalid HuBERT config: " + "; ".join(problems))

    @property
    def conv_dim(self) -> int:
        return self.conv_layers[-1][0]

    @property
    def min_samples(self) -> int:
        """Receptive field of the conv front end: the shortest input giving one frame (400)."""
        field = 1
        for _, kernel, stride in reversed(self.conv_layers):
            field = (field - 1) * stride + kernel
        return field

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` input samples (0 if too short)."""
        length = num_samples
        for _, kernel, stride in self.conv_layers:
            length = (length - kernel) // stride + 1 if length >= kernel else 0
        return length


def _gelu_fp32(x: torch.Tensor) -> torch.Tensor:
    """Exact (erf) GELU computed in float32, returned in the input dtype (as fairseq)."""
    return F.gelu(x.float()).type_as(x)


class Fp32Gelu(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _gelu_fp32(x)


class Fp32GroupNorm(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the model dtype (fairseq's ``Fp32GroupNorm``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps)
        return out.type_as(x)


class ConvFeatureExtractor(nn.Module):
    """Waveform (B, N) -> conv features (B, C, T).

    Block i is ``conv_layers.i``: Conv1d at index 0, GroupNorm at index 2 in
    block 0 only, GELU last.  Index 1 held fairseq's dropout; an empty slot
    keeps the parameter names (``conv_layers.0.2.weight``) identical.
    """

    def __init__(self, conv_layers: ConvSpec, conv_bias: bool) -> None:
        super().__init__()
        blocks = []
        in_channels = 1
        for index, (channels, kernel, stride) in enumerate(conv_layers):
            parts: list[nn.Module] = [nn.Conv1d(in_channels, channels, kernel, stride=stride, bias=conv_bias)]
            parts.append(nn.Identity())
            if index == 0:
                parts.append(Fp32GroupNorm(channels, channels))
            parts.append(Fp32Gelu())
            blocks.append(nn.Sequential(*parts))
            in_channels = channels
        self.conv_layers = nn.ModuleList(blocks)

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        x = source.unsqueeze(1)
        for block in self.conv_layers:
            x = block(x)
        return x


class SamePad(nn.Module):
    """Drops the extra last frame an even-kernel ``padding=k//2`` conv produces."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.remove = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : x.shape[-1] - self.remove]


class PositionalConv(nn.Conv1d):
    """The grouped positional conv; on CPU it runs in float32 for half-precision inputs.

    torch's CPU (oneDNN) kernels return wrong values for float16/bfloat16
    grouped convs with few channels per group (seen with torch 2.13), which
    reduced-width models have.  CUDA kernels are fine and stay in the model dtype.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dtype == torch.float32:
            return super().forward(x)
        bias = None if self.bias is None else self.bias.float()
        out = F.conv1d(x.float(), self.weight.float(), bias, self.stride, self.padding, self.dilation, self.groups)
        return out.type_as(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with q/k/v/out projections (fairseq names).

    Uses ``scaled_dot_product_attention``, whose kernels accumulate the softmax
    in float32 for half inputs, like fairseq's fp32 softmax.
    """

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, D); key_padding_mask (B, T) bool, True for padded frames, or None."""
        batch, frames, dim = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, H, T, D/H)
            return t.view(batch, frames, self.num_heads, dim // self.num_heads).transpose(1, 2)

        attend = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(
            heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x)), attn_mask=attend
        )
        return self.out_proj(out.transpose(1, 2).reshape(batch, frames, dim))


class EncoderLayer(nn.Module):
    """Post-LN transformer layer: LN(x + MHA(x)), then LN(x + FFN(x))."""

    def __init__(self, config: HubertConfig) -> None:
        super().__init__()
        self.self_attn = SelfAttention(config.embed_dim, config.num_heads)
        self.self_attn_layer_norm = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(config.embed_dim, config.ffn_dim)
        self.fc2 = nn.Linear(config.ffn_dim, config.embed_dim)
        self.final_layer_norm = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        x = self.self_attn_layer_norm(x + self.self_attn(x, key_padding_mask))
        return self.final_layer_norm(x + self.fc2(_gelu_fp32(self.fc1(x))))


class TransformerEncoder(nn.Module):
    """Positional conv, LayerNorm and the transformer layers (fairseq ``encoder.*``)."""

    def __init__(self, config: HubertConfig) -> None:
        super().__init__()
        dim, kernel = config.embed_dim, config.conv_pos
        conv = PositionalConv(dim, dim, kernel, padding=kernel // 2, groups=config.conv_pos_groups)
        # fairseq normalises the positional conv per kernel tap: weight-norm dim=2, g is (1, 1, k).
        self.pos_conv = nn.Sequential(apply_weight_norm(conv, dim=2), SamePad(kernel), Fp32Gelu())
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_layers))
        self.layer_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.seq_len_multiple = config.required_seq_len_multiple

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None, num_layers: int) -> torch.Tensor:
        """x (B, T, D) -> output of layer ``num_layers`` (1-based), (B, T, D)."""
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        x = self.layer_norm(x)
        frames = x.shape[1]
        pad = -frames % self.seq_len_multiple
        if pad:  # pad time to a multiple; the pad frames are masked out as keys
            x = F.pad(x, (0, 0, 0, pad))
            if padding_mask is None:
                padding_mask = x.new_zeros((x.shape[0], frames), dtype=torch.bool)
            padding_mask = F.pad(padding_mask, (0, pad), value=True)
        for layer in self.layers[:num_layers]:
            x = layer(x, padding_mask)
        return x[:, :frames]


class Hubert(nn.Module):
    """HuBERT / ContentVec encoder with fairseq parameter names.

    ``mask_emb`` and ``label_embs_concat`` are training-only; they exist (when
    the config says so) so that checkpoints load strictly.
    """

    def __init__(self, config: HubertConfig) -> None:
        super().__init__()
        self.config = config
        if config.mask_emb:
            self.mask_emb = nn.Parameter(torch.zeros(config.embed_dim))
        if config.num_classes:
            self.label_embs_concat = nn.Parameter(torch.zeros(config.num_classes, config.final_dim))
        self.feature_extractor = ConvFeatureExtractor(config.conv_layers, config.conv_bias)
        self.post_extract_proj = nn.Linear(config.conv_dim, config.embed_dim) if config.use_post_extract_proj else None
        self.encoder = TransformerEncoder(config)
        self.layer_norm = nn.LayerNorm(config.conv_dim, eps=config.layer_norm_eps)
        self.final_proj = nn.Linear(config.embed_dim, config.final_dim) if config.final_dim else None

    def forward_features(self, source: torch.Tensor) -> torch.Tensor:
        """Waveform (B, N) at 16 kHz -> conv features (B, conv_dim, T)."""
        return self.feature_extractor(source)

    def project_features(self, features: torch.Tensor) -> torch.Tensor:
        """Conv features (B, conv_dim, T) -> LayerNorm + post_extract_proj, (B, T, embed_dim)."""
        x = self.layer_norm(features.transpose(1, 2))
        return x if self.post_extract_proj is None else self.post_extract_proj(x)

    def extract_features(
        self, source: torch.Tensor, output_layer: int, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Output of transformer layer ``output_layer`` (1-based, as fairseq), (B, T, embed_dim).

        ``source`` is (B, N) float at 16 kHz in the model dtype; ``padding_mask``
        (B, N) bool marks padded samples (None: no padding).  No final_proj.
        """
        if not 1 <= output_layer <= self.config.num_layers:
            raise ValueError(f"output_layer must be in 1..{self.config.num_layers}, got {output_layer}")
        features = self.forward_features(source)
        frame_mask = None
        if padding_mask is not None and bool(padding_mask.any()):
            frame_mask = _frame_padding_mask(padding_mask, features.shape[-1])
        return self.encoder(self.project_features(features), frame_mask, output_layer)

    def forward(self, source: torch.Tensor, output_layer: int) -> torch.Tensor:
        return self.extract_features(source, output_layer)


def _frame_padding_mask(sample_mask: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, N) sample mask -> (B, frames): a frame is padding if all its samples are (fairseq's rule)."""
    usable = sample_mask.shape[1] - sample_mask.shape[1] % frames
    return sample_mask[:, :usable].reshape(sample_mask.shape[0], frames, -1).all(-1)
