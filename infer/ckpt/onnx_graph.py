"""The synthesizer as a graph for ONNX export: RVC's ``SynthesizerTrnMsNSFsidM`` inputs, our weights.

The modules here hold no weights of their own: they call the submodules of a
loaded :class:`~infer.models.synthesizer.Synthesizer`.  Two pieces are written
again for the graph:

* the relative-position attention, because the inference version is tuned for
  eager PyTorch (Python loops over the sequence length) and a traced graph must
  work for every length: here the band of relative offsets is gathered with
  index tensors built from the sequence length, which traces dynamically;
* the NSF sine phase, because PyTorch's CPU ``cumsum`` accumulates float32 in
  float64 while onnxruntime accumulates in float32, which drifts by ~1e-3 over
  a minute of audio: the graph does that one sum in float64 explicitly.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from infer.models.attentions import Encoder, MultiHeadAttention
from infer.models.commons import sequence_mask
from infer.models.encoders import TextEncoder
from infer.models.nsf import SourceModuleHnNSF
from infer.models.synthesizer import Synthesizer


def relative_attention(attn: MultiHeadAttention, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
    """Self-attention of ``attn`` over ``x`` (B, C, T) with (B, 1, T, T) mask, for any T (spec §5.3).

    scores[i, j] = q_i·k_j/√d + q_i·emb_rel_k[j − i + w]/√d for |j − i| ≤ w;
    out_i = Σ_j p[i, j]·(v_j + emb_rel_v[j − i + w]) (the relative terms only
    inside the window w).
    """
    window = attn.window_size
    query, key, value = attn.conv_q(x), attn.conv_k(x), attn.conv_v(x)
    batch, channels, length = key.shape
    heads, depth = attn.n_heads, attn.k_channels
    query = query.view(batch, heads, depth, length).transpose(2, 3) / math.sqrt(depth)
    key = key.view(batch, heads, depth, length).transpose(2, 3)
    value = value.view(batch, heads, depth, length).transpose(2, 3)
    scores = torch.matmul(query, key.transpose(-2, -1))  # [b, h, t, t]

    positions = torch.arange(length, device=x.device)
    offsets = positions.unsqueeze(0) - positions.unsqueeze(1)  # [t, t]: j − i
    in_band = offsets.abs() <= window
    band_index = (offsets.clamp(-window, window) + window).expand(batch, heads, -1, -1)
    rel_logits = torch.matmul(query, attn.emb_rel_k.transpose(-2, -1))  # [b, h, t, 2w+1]
    scores = scores + torch.where(in_band, torch.gather(rel_logits, 3, band_index), torch.zeros_like(scores))
    scores = scores.masked_fill(attn_mask == 0, -1e4)
    p_attn = F.softmax(scores, dim=-1)
    output = torch.matmul(p_attn, value)

    steps = torch.arange(2 * window + 1, device=x.device) - window
    columns = positions.unsqueeze(1) + steps.unsqueeze(0)  # [t, 2w+1]: key position i + d
    inside = (columns >= 0) & (columns < length)
    column_index = torch.where(inside, columns, torch.zeros_like(columns)).expand(batch, heads, -1, -1)
    band = torch.gather(p_attn, 3, column_index)
    band = torch.where(inside, band, torch.zeros_like(band))  # [b, h, t, 2w+1]: p[i, i + d]
    output = output + torch.matmul(band, attn.emb_rel_v)
    output = output.transpose(2, 3).reshape(batch, channels, length)
    return attn.conv_o(output)


def encode(encoder: Encoder, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
    """``encoder`` (post-norm Transformer) over ``x`` (B, C, T) with the mask always applied."""
    attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)
    x = x * x_mask
    for attn, norm_1, ffn, norm_2 in zip(
        encoder.attn_layers, encoder.norm_layers_1, encoder.ffn_layers, encoder.norm_layers_2
    ):
        x = norm_1(x + relative_attention(attn, x, attn_mask))
        x = norm_2(x + ffn(x, x_mask))
    return x * x_mask


def text_encoder_forward(
    enc: TextEncoder, phone: torch.Tensor, pitch: torch.Tensor | None, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``enc_p`` as in :class:`TextEncoder` (no realtime ``skip_head``), with the traceable attention."""
    x = enc.emb_phone(phone)
    if pitch is not None:
        x = x + enc.emb_pitch(pitch)
    x = F.leaky_relu(x * math.sqrt(enc.hidden_channels), 0.1).transpose(1, -1)
    x_mask = sequence_mask(lengths, x.size(2)).unsqueeze(1).to(x.dtype)
    x = encode(enc.encoder, x, x_mask)
    stats = enc.proj(x) * x_mask
    m, logs = torch.split(stats, enc.out_channels, dim=1)
    return m, logs, x_mask


class ExportSource(nn.Module):
    """The harmonic source of ``source`` (:class:`SourceModuleHnNSF`) with the phase summed in float64.

    ``forward(f0 (B, T) Hz, upp)`` → excitation (B, T·upp, 1), as the wrapped
    module computes it (random draws only when ``add_noise``).
    """

    def __init__(self, source: SourceModuleHnNSF) -> None:
        super().__init__()
        self.source = source

    def forward(self, f0: torch.Tensor, upp: int, *, add_noise: bool = True, generator=None) -> torch.Tensor:
        gen = self.source.l_sin_gen
        f0 = f0.unsqueeze(-1)  # (B, T, 1)
        steps = torch.arange(1, upp + 1, dtype=f0.dtype, device=f0.device)
        phase = f0 / gen.sample_rate * steps  # (B, T, upp) cycles inside each frame
        advance = torch.fmod(phase[:, :-1, -1:] + 0.5, 1.0) - 0.5
        start = advance.double().cumsum(dim=1).to(f0.dtype).fmod(1.0)
        phase = (phase + F.pad(start, (0, 0, 1, 0))).reshape(f0.shape[0], -1, 1)
        harmonics = torch.arange(1, gen.dim + 1, dtype=f0.dtype, device=f0.device).reshape(1, 1, -1)
        phase = phase * harmonics
        if add_noise and gen.dim > 1:  # random start phases of the overtones; the fundamental starts at 0
            initial = torch.rand(1, 1, gen.dim, dtype=f0.dtype, device=f0.device)
            phase = phase + initial * (harmonics > 1).to(f0.dtype)
        sine = torch.sin(2 * math.pi * phase) * gen.sine_amp
        uv = (f0 > gen.voiced_threshold).to(f0.dtype)
        uv = F.interpolate(uv.transpose(2, 1), scale_factor=float(upp), mode="nearest").transpose(2, 1)
        excitation = sine * uv
        if add_noise:
            noise_amp = uv * gen.noise_std + (1 - uv) * gen.sine_amp / 3
            excitation = excitation + noise_amp * torch.randn_like(sine)
        linear = self.source.l_linear
        return self.source.l_tanh(linear(excitation.to(linear.weight.dtype)))


class OnnxSynthesizer(nn.Module):
    """Export wrapper: ``(phone, phone_lengths, pitch, pitchf, ds, rnd) → audio`` (no-pitch: no pitch/pitchf).

    z_p = (m_p + exp(logs_p)·rnd)·mask, so ``rnd`` must already carry the
    noise scale: rnd = 0.66666·N(0, 1) reproduces PyTorch inference, zeros
    give the deterministic output.  ``nsf_noise`` keeps the NSF source's own
    random noise in the graph (as RVC's export does); False removes it.
    """

    def __init__(self, synthesizer: Synthesizer, *, nsf_noise: bool = True) -> None:
        super().__init__()
        if isinstance(getattr(synthesizer.dec, "m_source", None), SourceModuleHnNSF):
            synthesizer.dec.m_source = ExportSource(synthesizer.dec.m_source)  # a private copy: see export_module
        self.synthesizer = synthesizer
        self.nsf_noise = nsf_noise

    def _decode(self, phone, phone_lengths, pitch, pitchf, ds, rnd) -> torch.Tensor:
        s = self.synthesizer
        g = s.emb_g(ds).unsqueeze(-1)
        m_p, logs_p, x_mask = text_encoder_forward(s.enc_p, phone, pitch, phone_lengths)
        z_p = (m_p + torch.exp(logs_p) * rnd) * x_mask
        z = s.flow(z_p, x_mask, g=g, reverse=True)
        return s.dec(z * x_mask, pitchf, g=g, add_noise=self.nsf_noise)


class OnnxPitchSynthesizer(OnnxSynthesizer):
    def forward(self, phone, phone_lengths, pitch, pitchf, ds, rnd) -> torch.Tensor:
        return self._decode(phone, phone_lengths, pitch, pitchf, ds, rnd)


class OnnxNoPitchSynthesizer(OnnxSynthesizer):
    def forward(self, phone, phone_lengths, ds, rnd) -> torch.Tensor:
        return self._decode(phone, phone_lengths, None, None, ds, rnd)


def export_module(synthesizer: Synthesizer, *, nsf_noise: bool = True) -> OnnxSynthesizer:
    """The wrapper matching ``synthesizer``'s pitch setting, in eval mode.

    ``synthesizer`` is changed (its NSF source is wrapped): pass one built for the export.
    """
    cls = OnnxPitchSynthesizer if synthesizer.use_f0 else OnnxNoPitchSynthesizer
    return cls(synthesizer, nsf_noise=nsf_noise).eval()
