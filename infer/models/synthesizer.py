"""RVC's VITS synthesizer: one class for v1/v2 (feature_dim 256/768), with or without pitch (spec §5).

Replaces RVC's four ``SynthesizerTrnMs{256,768}NSFsid[_nono]`` classes with
identical state-dict keys *and key order*.  The order matters beyond looks:
AdamW state in ``G_*.pth`` is indexed by parameter position.  RVC's v2
classes re-create ``enc_p`` after the rest, so it comes last for v2 and
first for v1.

Inference without the posterior encoder (what RVC's small ``.pth`` models
hold): build with ``with_posterior=False``, or call :meth:`Synthesizer.drop_posterior`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from infer.models.commons import rand_slice_segments, randn, slice_segments
from infer.models.config import SynthesizerConfig, sample_rate_from_tag
from infer.models.encoders import PosteriorEncoder, ResidualCouplingBlock, TextEncoder
from infer.models.generators import Generator
from infer.models.weight_norm import remove_all_weight_norm

_IGNORED_KWARGS = {"is_half", "use_spectral_norm"}  # RVC passes these; they change nothing here
_FLOW_CONTEXT_FRAMES = 24  # realtime: frames kept before skip_head so the flow sees context


def _as_int(value: int | torch.Tensor) -> int:
    return int(value.item()) if isinstance(value, torch.Tensor) else int(value)


def _no_pitch_call(pitch, nsff0, sid, skip_head, return_length, return_length2) -> tuple:
    """Map RVC's no-pitch positional order ``(sid, skip_head, return_length, return_length2)``.

    Those values arrive in our ``pitch, nsff0, sid, skip_head`` slots; any
    realtime value not passed positionally may come by keyword instead.
    """
    if nsff0 is None:  # only sid was positional
        if sid is not None:
            raise TypeError("sid was given twice (positionally in RVC's no-pitch order and by keyword)")
        return pitch, skip_head, return_length, return_length2
    if (sid is not None and return_length is not None) or (skip_head is not None and return_length2 is not None):
        raise TypeError("a realtime argument was given both positionally (RVC's no-pitch order) and by keyword")
    return (
        pitch,
        nsff0,
        sid if sid is not None else return_length,
        skip_head if skip_head is not None else return_length2,
    )


class Synthesizer(nn.Module):
    """VITS generator of RVC voice models.

    Content features (B, T, feature_dim) at 100 frames/s (+ coarse and Hz
    pitch for ``use_f0`` models) and a speaker id give float audio
    (B, 1, T·hop) at ``sr`` Hz, hop = prod(upsample_rates) = sr/100.
    Arguments after ``use_f0`` are RVC's 18 config items in order; ``sr`` is an
    int or a tag such as ``"40k"``.  ``is_half``/``use_spectral_norm`` are
    accepted and ignored.
    """

    def __init__(
        self,
        feature_dim: int,
        use_f0: bool,
        spec_channels: int,
        segment_size: int,
        inter_channels: int,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        p_dropout: float,
        resblock: str,
        resblock_kernel_sizes: Sequence[int],
        resblock_dilation_sizes: Sequence[Sequence[int]],
        upsample_rates: Sequence[int],
        upsample_initial_channel: int,
        upsample_kernel_sizes: Sequence[int],
        spk_embed_dim: int,
        gin_channels: int,
        sr: int | str,
        *,
        with_posterior: bool = True,
        **kwargs: object,
    ) -> None:
        super().__init__()
        unknown = sorted(set(kwargs) - _IGNORED_KWARGS)
        if unknown:
            raise TypeError(f"Synthesizer got unexpected arguments: {', '.join(unknown)}")
        self.config = cfg = SynthesizerConfig(
            spec_channels=int(spec_channels),
            segment_size=int(segment_size),
            inter_channels=int(inter_channels),
            hidden_channels=int(hidden_channels),
            filter_channels=int(filter_channels),
            n_heads=int(n_heads),
            n_layers=int(n_layers),
            kernel_size=int(kernel_size),
            p_dropout=float(p_dropout),
            resblock=str(resblock),
            resblock_kernel_sizes=tuple(int(k) for k in resblock_kernel_sizes),
            resblock_dilation_sizes=tuple(tuple(int(d) for d in ds) for ds in resblock_dilation_sizes),
            upsample_rates=tuple(int(u) for u in upsample_rates),
            upsample_initial_channel=int(upsample_initial_channel),
            upsample_kernel_sizes=tuple(int(k) for k in upsample_kernel_sizes),
            spk_embed_dim=int(spk_embed_dim),
            gin_channels=int(gin_channels),
            sample_rate=sample_rate_from_tag(sr),
            feature_dim=int(feature_dim),
            use_f0=bool(use_f0),
        )
        self.use_f0 = cfg.use_f0
        self.segment_size = cfg.segment_size
        self.hop_length = cfg.hop_length
        self.sample_rate = cfg.sample_rate

        if cfg.feature_dim == 256:
            self.enc_p = self._text_encoder(cfg)
        self.dec = Generator(
            cfg.inter_channels,
            cfg.resblock,
            cfg.resblock_kernel_sizes,
            cfg.resblock_dilation_sizes,
            cfg.upsample_rates,
            cfg.upsample_initial_channel,
            cfg.upsample_kernel_sizes,
            gin_channels=cfg.gin_channels,
            sample_rate=cfg.sample_rate if cfg.use_f0 else None,
        )
        if with_posterior:  # WaveNet kernel 5, dilation rate 1, 16 layers (fixed in RVC)
            self.enc_q = PosteriorEncoder(
                cfg.spec_channels, cfg.inter_channels, cfg.hidden_channels, 5, 1, 16, gin_channels=cfg.gin_channels
            )
        # 4 coupling layers, each a WaveNet with kernel 5, dilation rate 1, 3 layers (fixed in RVC)
        self.flow = ResidualCouplingBlock(
            cfg.inter_channels, cfg.hidden_channels, 5, 1, 3, n_flows=4, gin_channels=cfg.gin_channels
        )
        self.emb_g = nn.Embedding(cfg.spk_embed_dim, cfg.gin_channels)
        if cfg.feature_dim != 256:
            self.enc_p = self._text_encoder(cfg)

    @staticmethod
    def _text_encoder(cfg: SynthesizerConfig) -> TextEncoder:
        return TextEncoder(
            cfg.feature_dim,
            cfg.inter_channels,
            cfg.hidden_channels,
            cfg.filter_channels,
            cfg.n_heads,
            cfg.n_layers,
            cfg.kernel_size,
            cfg.p_dropout,
            use_f0=cfg.use_f0,
        )

    @classmethod
    def from_config(cls, cfg: SynthesizerConfig, *, with_posterior: bool = True) -> Synthesizer:
        """Build from a :class:`SynthesizerConfig` (``with_posterior=False`` for inference-only models)."""
        return cls(cfg.feature_dim, cfg.use_f0, *cfg.to_rvc_list(), with_posterior=with_posterior)

    @property
    def has_posterior(self) -> bool:
        return hasattr(self, "enc_q")

    def drop_posterior(self) -> None:
        """Delete ``enc_q`` (training only), as RVC does before loading a small model."""
        if self.has_posterior:
            del self.enc_q

    def remove_weight_norm(self) -> None:
        """Fold every ``weight_g``/``weight_v`` pair into a plain weight (faster inference, same output)."""
        remove_all_weight_norm(self)

    def _speaker(self, sid: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        if sid is None:
            sid = torch.zeros(like.shape[0], dtype=torch.long, device=like.device)
        return self.emb_g(sid).unsqueeze(-1)  # [b, gin, 1]

    def forward(
        self,
        phone: torch.Tensor,
        phone_lengths: torch.Tensor,
        pitch: torch.Tensor | None = None,
        pitchf: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        y_lengths: torch.Tensor | None = None,
        ds: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple:
        """Training forward (spec §5.8); needs the posterior encoder.

        Pitch models: ``(phone (B,T,C), phone_lengths (B,), pitch (B,T) int64,
        pitchf (B,T) Hz, y (B,spec_channels,T) linear spectrogram, y_lengths (B,),
        ds (B,) speaker ids)``.  No-pitch models also accept RVC's order
        ``(phone, phone_lengths, y, y_lengths, ds)``: a 3-D tensor in the
        ``pitch`` slot is read that way.  ``ds=None`` means speaker 0.

        Returns ``o`` (B, 1, segment_size·hop) decoded from a random
        ``segment_size``-frame slice of z (start uniform per item, pitchf sliced
        alike), ``ids_slice`` (B,), ``x_mask``, ``y_mask`` and
        ``(z, z_p, m_p, logs_p, m_q, logs_q)``.  Random draws (posterior noise,
        slice starts, NSF noise) use ``generator``, else torch's global RNG.
        """
        if not self.use_f0 and pitch is not None and pitch.dim() == 3:
            if y_lengths is not None or ds is not None:
                raise TypeError(
                    "too many positional arguments for RVC's no-pitch order (phone, lengths, y, y_lengths, ds)"
                )
            y, y_lengths, ds, pitch, pitchf = pitch, pitchf, y, None, None
        if not self.has_posterior:
            raise RuntimeError("this Synthesizer was built without its posterior encoder (enc_q); training needs it")
        if y is None or y_lengths is None:
            raise ValueError("training forward needs the spectrogram y and y_lengths")
        if self.use_f0 and (pitch is None or pitchf is None):
            raise ValueError("this is a pitch model: pass pitch (coarse, int64) and pitchf (Hz)")

        g = self._speaker(ds, phone)
        m_p, logs_p, x_mask = self.enc_p(phone, pitch if self.use_f0 else None, phone_lengths)
        z, m_q, logs_q, y_mask = self.enc_q(y, y_lengths, g=g, generator=generator)
        z_p = self.flow(z, y_mask, g=g)
        z_slice, ids_slice = rand_slice_segments(z, y_lengths, self.segment_size, generator)
        f0_slice = slice_segments(pitchf, ids_slice, self.segment_size) if self.use_f0 else None
        o = self.dec(z_slice, f0_slice, g=g, generator=generator)
        return o, ids_slice, x_mask, y_mask, (z, z_p, m_p, logs_p, m_q, logs_q)

    def infer(
        self,
        phone: torch.Tensor,
        phone_lengths: torch.Tensor,
        pitch: torch.Tensor | None = None,
        nsff0: torch.Tensor | None = None,
        sid: torch.Tensor | None = None,
        skip_head: int | torch.Tensor | None = None,
        return_length: int | torch.Tensor | None = None,
        return_length2: int | torch.Tensor | None = None,
        *,
        noise_scale: float = 0.66666,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Convert content features to audio (spec §5.9).  Call under ``torch.no_grad()``.

        ``phone`` (B, T, feature_dim) float at 100 frames/s, ``phone_lengths``
        (B,) int64, ``pitch`` (B, T) int64 coarse pitch 1..255 and ``nsff0``
        (B, T) f0 in Hz (pitch models; ignored otherwise), ``sid`` (B,) int64
        (None: speaker 0).  Returns ``o`` (B, 1, T·hop) float audio at
        ``sample_rate``, ``x_mask`` and ``(z, z_p, m_p, logs_p)``.

        RVC's no-pitch call ``infer(phone, lengths, sid[, skip_head,
        return_length, return_length2])`` also works: for a no-pitch model a
        0-D or 1-D tensor in the ``pitch`` slot is taken as ``sid`` and the following
        positional values shift accordingly.

        Realtime: with ``skip_head`` and ``return_length`` (frames) the encoder
        drops max(skip_head−24, 0) leading frames, the flow runs on the rest
        and the result is cut to ``return_length`` frames from ``skip_head``;
        ``return_length2`` makes the decoder resample to that many frames.

        Noise: z_p = (m_p + exp(logs_p)·ε·noise_scale)·mask.  ``noise_scale=0``
        removes every random draw (no prior noise, no NSF noise).  Draws come
        from ``generator``, or, when None, from torch's global RNG in RVC's
        order (ε, then the NSF ``rand(1,1,1)`` and ``randn``), so
        ``torch.manual_seed(s)`` reproduces RVC's output.
        """
        if not self.use_f0 and pitch is not None and pitch.dim() <= 1:
            sid, skip_head, return_length, return_length2 = _no_pitch_call(
                pitch, nsff0, sid, skip_head, return_length, return_length2
            )
            pitch = nsff0 = None
        if self.use_f0 and (pitch is None or nsff0 is None):
            raise ValueError("this is a pitch model: pass pitch (coarse, int64) and nsff0 (f0 in Hz)")
        if not self.use_f0:
            pitch = nsff0 = None
        if (skip_head is None) != (return_length is None):
            raise ValueError("skip_head and return_length must be given together (realtime mode)")

        g = self._speaker(sid, phone)
        flow_head = dec_head = 0
        if skip_head is not None:
            head, length = _as_int(skip_head), _as_int(return_length)
            flow_head = max(head - _FLOW_CONTEXT_FRAMES, 0)
            dec_head = head - flow_head
        m_p, logs_p, x_mask = self.enc_p(phone, pitch, phone_lengths, skip_head=flow_head)
        if noise_scale:
            noise = randn(tuple(m_p.shape), m_p, generator)
            z_p = (m_p + torch.exp(logs_p) * noise * noise_scale) * x_mask
        else:
            z_p = m_p * x_mask
        z = self.flow(z_p, x_mask, g=g, reverse=True)
        if skip_head is not None:
            z = z[:, :, dec_head : dec_head + length]
            x_mask = x_mask[:, :, dec_head : dec_head + length]
            if nsff0 is not None:
                nsff0 = nsff0[:, head : head + length]
        o = self.dec(z * x_mask, nsff0, g=g, n_res=return_length2, add_noise=bool(noise_scale), generator=generator)
        return o, x_mask, (z, z_p, m_p, logs_p)


def build_synthesizer(cfg: SynthesizerConfig, *, with_posterior: bool = True) -> Synthesizer:
    """The synthesizer described by ``cfg`` (``with_posterior=False``: inference-only, no ``enc_q``)."""
    return Synthesizer.from_config(cfg, with_posterior=with_posterior)
