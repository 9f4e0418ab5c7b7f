"""Tiny random HuBERT content encoders, in RVC's fairseq format or Hugging Face's.

``save_tiny_hubert(path)`` writes a file with the real structure (12 layers,
the 7-block conv front end with hubert_base's kernels and strides, positional
conv k=128 in 16 groups, the 504-symbol dictionary) but tiny widths, so the
file is about 0.3 MB and loads in milliseconds.

How the fairseq ``Dictionary`` gets into the pickle without fairseq: the real
``hubert_base.pt`` holds a ``fairseq.data.dictionary.Dictionary`` in
``task_state``.  We pickle a plain stand-in class of our own and give
``torch.save`` a pickler (a subclass of Python's pure-Python
``pickle._Pickler``) whose ``save_global`` writes that class under the name
``fairseq.data.dictionary.Dictionary``.  Nothing is imported or registered in
``sys.modules``; the file reads back exactly like the real one (the safe
loader maps that name to a stand-in).
"""

from __future__ import annotations

import json
import pickle
import re
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from infer.models.hubert import Hubert, HubertConfig

FAIRSEQ_DICTIONARY = ("fairseq.data.dictionary", "Dictionary")
DICTIONARY_SYMBOLS = ["<s>", "<pad>", "</s>", "<unk>"] + [str(i) for i in range(500)]


def tiny_hubert_config(
    *, embed_dim: int = 32, final_dim: int = 16, conv_dim: int = 16, ffn_dim: int = 64, heads: int = 4
) -> HubertConfig:
    """hubert_base's structure with small widths; ``final_dim`` 0 means no final_proj."""
    kernels_strides = [(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2
    return HubertConfig(
        conv_layers=tuple((conv_dim, kernel, stride) for kernel, stride in kernels_strides),
        embed_dim=embed_dim,
        ffn_dim=ffn_dim,
        num_heads=heads,
        final_dim=final_dim,
        num_classes=len(DICTIONARY_SYMBOLS) if final_dim else 0,
        use_post_extract_proj=conv_dim != embed_dim,
    )


def random_hubert(config: HubertConfig, seed: int = 0) -> Hubert:
    """A :class:`Hubert` with seeded random weights (the global RNG is left alone).

    Norm gains and biases are perturbed away from 1/0 and the weight-norm gain
    is scaled away from ``||v||`` so that every parameter matters.
    """
    network = Hubert(config)
    generator = torch.Generator().manual_seed(seed)

    def normal(shape: torch.Size, std: float) -> torch.Tensor:
        return torch.randn(shape, generator=generator) * std

    with torch.no_grad():
        for name, param in network.named_parameters():
            if name.endswith("weight_g"):
                continue  # set below from weight_v
            if param.dim() >= 2 and name != "label_embs_concat":
                param.copy_(normal(param.shape, param[0].numel() ** -0.5))
            elif name.endswith("weight"):
                param.copy_(1.0 + normal(param.shape, 0.1))
            else:
                param.copy_(normal(param.shape, 0.1))
        conv = network.encoder.pos_conv[0]
        scale = 0.5 + torch.rand(conv.weight_g.shape, generator=generator)
        conv.weight_g.copy_(conv.weight_v.norm(dim=(0, 1), keepdim=True) * scale)
    return network.eval()


def save_tiny_hubert(
    path: str | Path,
    *,
    seed: int = 0,
    fmt: str = "fairseq",
    embed_dim: int = 32,
    final_dim: int = 16,
    conv_dim: int = 16,
    ffn_dim: int = 64,
    heads: int = 4,
) -> Path:
    """Write a tiny random HuBERT and return the path to pass to ``load_content_encoder``.

    ``fmt="fairseq"``: ``path`` is the ``.pt`` file (structured like RVC's
    ``hubert_base.pt``, fp16 weights).  ``fmt="hf"``: ``path`` is a folder that
    gets ``config.json`` and ``pytorch_model.bin`` (transformers key names,
    float32, ``final_proj`` as in ContentVec exports unless ``final_dim`` is 0).
    ``embed_dim`` must be divisible by 16 (positional conv groups) and ``heads``.
    """
    if fmt not in ("fairseq", "hf"):
        raise ValueError(f"fmt must be 'fairseq' or 'hf', got {fmt!r}")
    if fmt == "fairseq" and final_dim <= 0:
        raise ValueError("a fairseq HuBERT always has final_proj: final_dim must be positive")
    config = tiny_hubert_config(
        embed_dim=embed_dim, final_dim=final_dim, conv_dim=conv_dim, ffn_dim=ffn_dim, heads=heads
    )
    # Rounded to fp16 values so that both formats of one seed hold exactly the same numbers.
    state = {key: value.half().float() for key, value in random_hubert(config, seed).state_dict().items()}
    path = Path(path)
    if fmt == "hf":
        return save_hf_hubert(path, config, state)
    return save_fairseq_hubert(path, config, state)


# ---- fairseq -------------------------------------------------------------------------------------


class _DictionaryStandIn:
    """Holds the attributes of a fairseq ``Dictionary``; pickled under fairseq's class name."""

    def __init__(self, symbols: list[str]) -> None:
        self.bos_word, self.unk_word, self.pad_word, self.eos_word = "<s>", "<unk>", "<pad>", "</s>"
        self.symbols = list(symbols)
        self.count = [1] * 4 + [0] * (len(symbols) - 4)
        self.indices = {symbol: index for index, symbol in enumerate(symbols)}
        self.bos_index, self.pad_index, self.eos_index, self.unk_index = 0, 1, 2, 3
        self.nspecial = 4


class _FairseqNamePickler(pickle._Pickler):
    """Writes :class:`_DictionaryStandIn` as a reference to ``fairseq.data.dictionary.Dictionary``."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is _DictionaryStandIn:
            module, qualname = FAIRSEQ_DICTIONARY
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


# torch.save wants a module-like object with a ``Pickler``; this one is never put in sys.modules.
_PICKLE_MODULE = types.ModuleType("rvc_fairseq_name_pickle")
_PICKLE_MODULE.Pickler = _FairseqNamePickler


def fairseq_model_cfg(config: HubertConfig) -> dict[str, Any]:
    """``cfg["model"]`` as fairseq writes it for the hubert_base recipe, with ``config``'s widths."""
    conv = " + ".join(f"[({c},{k},{s})]" for c, k, s in config.conv_layers)
    return {
        "_name": "hubert",
        "label_rate": 50.0,
        "extractor_mode": "default",
        "encoder_layers": config.num_layers,
        "encoder_embed_dim": config.embed_dim,
        "encoder_ffn_embed_dim": config.ffn_dim,
        "encoder_attention_heads": config.num_heads,
        "activation_fn": "gelu",
        "layer_type": "transformer",
        "dropout": 0.1,
        "attention_dropout": 0.1,
        "activation_dropout": 0.0,
        "encoder_layerdrop": 0.05,
        "dropout_input": 0.1,
        "dropout_features": 0.1,
        "final_dim": config.final_dim,
        "untie_final_proj": True,
        "layer_norm_first": False,
        "conv_feature_layers": conv,
        "conv_bias": config.conv_bias,
        "logit_temp": 0.1,
        "target_glu": False,
        "feature_grad_mult": 0.1,
        "mask_length": 10,
        "mask_prob": 0.8,
        "mask_selection": "static",
        "conv_pos": config.conv_pos,
        "conv_pos_groups": config.conv_pos_groups,
        "required_seq_len_multiple": config.required_seq_len_multiple,
        "pos_enc_type": "abs",
        "fp16": False,
    }


FAIRSEQ_TASK_CFG = {
    "_name": "hubert_pretraining",
    "data": "data/manifest",
    "fine_tuning": False,
    "labels": ["km"],
    "label_dir": "data/km500",
    "label_rate": 50.0,
    "sample_rate": 16000,
    "normalize": False,
    "enable_padding": False,
    "max_sample_size": 250000,
    "min_sample_size": 32000,
    "single_target": False,
    "random_crop": True,
    "pad_audio": False,
}


def save_fairseq_hubert(path: Path, config: HubertConfig, state: dict[str, torch.Tensor]) -> Path:
    """Write ``state`` (fairseq key names) as a fairseq ``Trainer`` checkpoint like ``hubert_base.pt``."""
    checkpoint = {
        "args": None,
        "cfg": {
            "_name": None,
            "common": {"fp16": True},
            "model": fairseq_model_cfg(config),
            "task": dict(FAIRSEQ_TASK_CFG),
        },
        "model": OrderedDict((key, value.detach().half()) for key, value in state.items()),
        "criterion": None,
        "optimizer_history": [
            {
                "criterion_name": "HubertCriterion",
                "optimizer_name": "FairseqAdam",
                "lr_scheduler_state": {"best": None},
                "num_updates": 0,
            }
        ],
        "task_state": {"dictionaries": [_DictionaryStandIn(DICTIONARY_SYMBOLS)]},
        "extra_state": {"metrics": {}, "previous_training_time": 0.0},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path, pickle_module=_PICKLE_MODULE, pickle_protocol=2)
    return path


# ---- Hugging Face --------------------------------------------------------------------------------

_TO_HF_RULES = [
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
        (r"^feature_extractor\.conv_layers\.(\d+)\.2\.", r"feature_extractor.conv_layers.\1.layer_norm."),
        (r"^layer_norm\.", "feature_projection.layer_norm."),
        (r"^post_extract_proj\.", "feature_projection.projection."),
        (r"^mask_emb$", "masked_spec_embed"),
        (r"^encoder\.pos_conv\.0\.", "encoder.pos_conv_embed.conv."),
        (r"^encoder\.layers\.(\d+)\.self_attn\.", r"encoder.layers.\1.attention."),
        (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.layers.\1.layer_norm."),
        (r"^encoder\.layers\.(\d+)\.fc1\.", r"encoder.layers.\1.feed_forward.intermediate_dense."),
        (r"^encoder\.layers\.(\d+)\.fc2\.", r"encoder.layers.\1.feed_forward.output_dense."),
    )
]


def fairseq_state_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fairseq HuBERT keys -> transformers ``HubertModel`` keys (plus ContentVec's ``final_proj``).

    ``label_embs_concat`` has no transformers counterpart and is dropped.
    """
    out = {}
    for key, value in state.items():
        if key == "label_embs_concat":
            continue
        for pattern, replacement in _TO_HF_RULES:
            key = pattern.sub(replacement, key)
        out[key] = value
    return out


def hf_config_dict(config: HubertConfig) -> dict[str, Any]:
    """A transformers ``HubertConfig`` ``config.json`` dict for ``config``."""
    return {
        "architectures": ["HubertModelWithFinalProj" if config.final_dim else "HubertModel"],
        "model_type": "hubert",
        "hidden_size": config.embed_dim,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.ffn_dim,
        "hidden_act": "gelu",
        "conv_dim": [c for c, _, _ in config.conv_layers],
        "conv_kernel": [k for _, k, _ in config.conv_layers],
        "conv_stride": [s for _, _, s in config.conv_layers],
        "num_feat_extract_layers": len(config.conv_layers),
        "conv_bias": config.conv_bias,
        "feat_extract_norm": "group",
        "feat_extract_activation": "gelu",
        "feat_proj_layer_norm": True,
        "do_stable_layer_norm": False,
        "layer_norm_eps": config.layer_norm_eps,
        "num_conv_pos_embeddings": config.conv_pos,
        "num_conv_pos_embedding_groups": config.conv_pos_groups,
        "classifier_proj_size": config.final_dim or 256,
        "mask_time_prob": 0.05,
        "torch_dtype": "float32",
    }


def save_hf_hubert(folder: Path, config: HubertConfig, state: dict[str, torch.Tensor]) -> Path:
    """Write ``state`` (fairseq key names) as a Hugging Face folder: config.json + pytorch_model.bin."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(hf_config_dict(config), indent=2), encoding="utf-8")
    weights = {key: value.detach().float().contiguous() for key, value in fairseq_state_to_hf(state).items()}
    torch.save(weights, folder / "pytorch_model.bin")
    return folder
