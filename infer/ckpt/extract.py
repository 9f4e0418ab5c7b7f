"""Extract a small (inference) model from a G_ training checkpoint.

RVC's "ckpt → extract" writes a hard-coded config per sample rate and version
(spec §9.5), which is wrong for any model whose widths differ from the preset.
We read the widths from the weights instead: for standard full-size models the
result is identical to RVC's table, and for other widths the config describes
the weights that are actually in the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from infer.checkpoints import SmallModel, TrainCheckpoint, make_small_model, read_checkpoint
from infer.models.config import SynthesizerConfig, preset, sample_rate_from_tag
from infer.safe_load import ModelFileError


def _count(weight: Mapping[str, torch.Tensor], prefix: str) -> int:
    indices = {int(k[len(prefix):].split(".")[0]) for k in weight if k.startswith(prefix)}
    return max(indices) + 1 if indices else 0


def config_from_weights(
    weight: Mapping[str, torch.Tensor], version: str, sample_rate: int | str
) -> SynthesizerConfig:
    """The synthesizer config that fits ``weight`` (a generator state dict).

    Widths, layer counts and kernel sizes are read from tensor shapes; what
    shapes cannot tell (attention heads, upsample strides, resblock dilations)
    comes from RVC's preset for ``version``/``sample_rate``.
    """
    try:
        emb_phone = weight["enc_p.emb_phone.weight"]
        base = preset(version, sample_rate, use_f0="enc_p.emb_pitch.weight" in weight)
        n_ups = _count(weight, "dec.ups.")
        if n_ups != len(base.upsample_rates):
            raise ModelFileError(
                f"The generator has {n_ups} upsampling stages but a {version} model at {sample_rate} has "
                f"{len(base.upsample_rates)}: the sample rate or version chosen does not match this checkpoint."
            )
        spec = weight.get("enc_q.pre.weight")
        return base.with_(
            spec_channels=int(spec.shape[1]) if spec is not None else base.spec_channels,
            inter_channels=int(weight["enc_p.proj.weight"].shape[0]) // 2,
            hidden_channels=int(emb_phone.shape[0]),
            filter_channels=int(weight["enc_p.encoder.ffn_layers.0.conv_1.weight"].shape[0]),
            n_layers=_count(weight, "enc_p.encoder.attn_layers."),
            kernel_size=int(weight["enc_p.encoder.ffn_layers.0.conv_1.weight"].shape[2]),
            upsample_initial_channel=int(weight["dec.conv_pre.weight"].shape[0]),
            upsample_kernel_sizes=tuple(int(weight[f"dec.ups.{i}.weight_v"].shape[2]) for i in range(n_ups)),
            spk_embed_dim=int(weight["emb_g.weight"].shape[0]),
            gin_channels=int(weight["emb_g.weight"].shape[1]),
            feature_dim=int(emb_phone.shape[1]),
        )
    except KeyError as exc:
        raise ModelFileError(f"The generator weights lack {exc}; this is not an RVC generator checkpoint.") from exc


def extract_small_model(
    checkpoint: str | Path | TrainCheckpoint,
    *,
    version: str,
    sample_rate: int | str,
    info: str = "",
) -> SmallModel:
    """Small model from a G_ checkpoint (enc_q dropped, fp16), ``info`` defaulting to RVC's text.

    ``version`` and ``sample_rate`` must be the experiment's; pitch guidance is
    read from the weights.
    """
    ckpt = checkpoint if isinstance(checkpoint, TrainCheckpoint) else read_checkpoint(checkpoint)
    if ckpt.kind != "generator":
        raise ModelFileError("Extraction needs a generator checkpoint (G_*.pth), not a discriminator (D_*.pth).")
    config = config_from_weights(ckpt.model, version, sample_rate_from_tag(sample_rate))
    return make_small_model(ckpt.model, config, version, info or "Extracted model.")
