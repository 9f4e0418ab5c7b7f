"""Content encoder files: RVC's fairseq ``hubert_base.pt`` and Hugging Face HuBERT folders.

Reads either format into a :class:`HubertCheckpoint`: the
:class:`~infer.models.hubert.HubertConfig` it describes and its weights under
fairseq's names (which :class:`~infer.models.hubert.Hubert` uses).  Building
the network is :func:`infer.content.load_content_encoder`'s job.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch

from infer.models.hubert import ConvSpec, HubertConfig
from infer.models.weight_norm import rename_parametrized_keys
from infer.safe_load import ModelFileError, load_torch_file

BASE_CONV_FEATURE_LAYERS = "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"
"""hubert_base's ``conv_feature_layers``, as fairseq writes it."""

DOWNLOAD_HINT = (
    "RVC's content encoder is assets/hubert/hubert_base.pt from the Hugging Face repo lj1995/VoiceConversionWebUI"
)


class HubertCheckpoint(NamedTuple):
    """What a content encoder file holds, before any network is built."""

    config: HubertConfig
    state: dict[str, torch.Tensor]
    """Weights under fairseq's names, as stored (fp16 for hubert_base.pt)."""
    normalize: bool
    """Whether the waveform gets a whole-utterance layer norm first (fairseq ``task.normalize``)."""


def parse_conv_feature_layers(spec: str | list | tuple) -> ConvSpec:
    """Parse fairseq's ``conv_feature_layers`` without ``eval``.

    fairseq stores the front end as a Python expression such as
    ``"[(512,10,5)] + [(512,3,2)] * 4"``.  Only int literals, lists, tuples,
    ``+`` and ``*`` are accepted.  Raises ``ValueError`` for anything else.
    """
    try:
        value = _literal(ast.parse(spec, mode="eval").body) if isinstance(spec, str) else spec
        layers = tuple((int(c), int(k), int(s)) for c, k, s in value)
    except (TypeError, ValueError, SyntaxError) as exc:
        raise ValueError(f"conv_feature_layers {spec!r} is not a list of (channels, kernel, stride)") from exc
    if not layers or min(min(layer) for layer in layers) < 1:
        raise ValueError(f"conv_feature_layers {spec!r} must list positive (channels, kernel, stride) triples")
    return layers


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(item) for item in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
        left, right = _literal(node.left), _literal(node.right)
        if isinstance(node.op, ast.Mult) and isinstance(left, int) and isinstance(right, int):
            return left * right
        if isinstance(node.op, ast.Mult) and (isinstance(left, int) or isinstance(right, int)):
            count = left if isinstance(left, int) else right
            if not 0 <= count <= 64:
                raise ValueError(f"unreasonable repeat count {count} in conv_feature_layers")
        return left + right if isinstance(node.op, ast.Add) else left * right
    raise ValueError(f"unsupported expression in conv_feature_layers: {ast.dump(node)[:80]}")


# ---- configs ----------------------------------------------------------------------------------

# HubertConfig field: (fairseq cfg key, transformers config key, type); None where a format lacks it.
_CONFIG_FIELDS = {
    "conv_bias": ("conv_bias", "conv_bias", bool),
    "embed_dim": ("encoder_embed_dim", "hidden_size", int),
    "ffn_dim": ("encoder_ffn_embed_dim", "intermediate_size", int),
    "num_layers": ("encoder_layers", "num_hidden_layers", int),
    "num_heads": ("encoder_attention_heads", "num_attention_heads", int),
    "final_dim": (None, "classifier_proj_size", int),
    "conv_pos": ("conv_pos", "num_conv_pos_embeddings", int),
    "conv_pos_groups": ("conv_pos_groups", "num_conv_pos_embedding_groups", int),
    "required_seq_len_multiple": ("required_seq_len_multiple", None, int),
    "layer_norm_eps": (None, "layer_norm_eps", float),
}
_FAIRSEQ_FIELDS = {name: (key, kind) for name, (key, _, kind) in _CONFIG_FIELDS.items() if key is not None}
_HF_FIELDS = {name: (key, kind) for name, (_, key, kind) in _CONFIG_FIELDS.items() if key is not None}
_HF_CONV_KEYS = ("conv_dim", "conv_kernel", "conv_stride")


def hubert_config_from_fairseq(model_cfg: Mapping[str, Any], **overrides: Any) -> HubertConfig:
    """Config from fairseq's model section (``cfg["model"]`` or an old ``args``).

    Missing fields take fairseq's defaults; ``overrides`` (for example
    ``final_dim``/``num_classes`` read from the state dict) win.  Raises
    ``ValueError`` for HuBERT variants the network does not implement.
    """
    get = _getter(model_cfg)
    _require_base(get, extractor_mode="default", layer_norm_first=False, activation_fn="gelu")
    values = {name: kind(get(key, getattr(HubertConfig, name))) for name, (key, kind) in _FAIRSEQ_FIELDS.items()}
    values["conv_layers"] = parse_conv_feature_layers(get("conv_feature_layers", BASE_CONV_FEATURE_LAYERS))
    values["final_dim"] = int(get("final_dim", 0)) or values["embed_dim"]
    values["use_post_extract_proj"] = values["conv_layers"][-1][0] != values["embed_dim"]
    return HubertConfig(**{**values, **overrides})


def hubert_config_from_hf(hf_config: Mapping[str, Any], **overrides: Any) -> HubertConfig:
    """Config from a transformers ``HubertConfig`` dict (``config.json``); ``overrides`` win."""
    get = _getter(hf_config)
    _require_base(
        get,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        feat_proj_layer_norm=True,
        hidden_act="gelu",
        feat_extract_activation="gelu",
    )
    values = {name: kind(get(key, getattr(HubertConfig, name))) for name, (key, kind) in _HF_FIELDS.items()}
    base = HubertConfig.conv_layers
    columns = [get(key, [layer[i] for layer in base]) for i, key in enumerate(_HF_CONV_KEYS)]
    if len({len(column) for column in columns}) != 1:
        raise ValueError("conv_dim, conv_kernel and conv_stride have different lengths")
    values["conv_layers"] = parse_conv_feature_layers(list(zip(*columns)))
    return HubertConfig(**{**values, **overrides})


def _getter(section: Mapping[str, Any]):
    def get(key: str, default: Any) -> Any:
        value = section.get(key)
        return default if value is None else value

    return get


def _require_base(get, **wanted: Any) -> None:
    """Refuse variants (large/pre-LN HuBERT, other activations) the network does not implement."""
    for key, value in wanted.items():
        found = get(key, value)
        if found != value:
            raise ValueError(f"{key}={found!r} is not supported; only HuBERT-base style models ({key}={value!r})")


# ---- fairseq checkpoint (RVC's hubert_base.pt) -------------------------------------------------


def read_fairseq_hubert(path: Path) -> HubertCheckpoint:
    """Config, weights and ``task.normalize`` of a fairseq checkpoint; ``ModelFileError`` if unusable."""
    checkpoint = load_torch_file(path)
    state = checkpoint.get("model") if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping) or not _looks_like_hubert(state):
        raise ModelFileError(_not_hubert_message(path, checkpoint))
    model_cfg, task_cfg = _fairseq_sections(path, checkpoint)
    state = _fold_plain_pos_conv(dict(state))
    overrides = _state_overrides(state)
    try:
        config = hubert_config_from_fairseq(model_cfg, **overrides)
    except ValueError as exc:
        raise ModelFileError(f"Cannot use '{path}' as the content encoder: {exc}.") from exc
    return HubertCheckpoint(config, state, bool(task_cfg.get("normalize") or False))


def _fairseq_sections(path: Path, checkpoint: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(model cfg, task cfg) from ``cfg`` (fairseq >= 0.10) or the older flat ``args`` namespace."""
    cfg = checkpoint.get("cfg")
    if isinstance(cfg, Mapping) and isinstance(cfg.get("model"), Mapping):
        task = cfg.get("task")
        return cfg["model"], task if isinstance(task, Mapping) else {}
    args = checkpoint.get("args")
    if args is not None and isinstance(getattr(args, "__dict__", None), dict):
        return vars(args), vars(args)
    raise ModelFileError(
        f"'{path}' has HuBERT weights but no 'cfg' or 'args' section describing the model; "
        f"the file is incomplete. {DOWNLOAD_HINT}."
    )


# ---- Hugging Face folder ----------------------------------------------------------------------

_HF_HEAD_PREFIXES = ("lm_head.", "projector.", "classifier.", "layer_weights")
_HF_KEY_RULES = [
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
        (r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", r"feature_extractor.conv_layers.\1.2."),
        (r"^feature_projection\.layer_norm\.", "layer_norm."),
        (r"^feature_projection\.projection\.", "post_extract_proj."),
        (r"^masked_spec_embed$", "mask_emb"),
        (r"^encoder\.pos_conv_embed\.conv\.", "encoder.pos_conv.0."),
        (r"^encoder\.layers\.(\d+)\.attention\.", r"encoder.layers.\1.self_attn."),
        (r"^encoder\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
        (r"^encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"encoder.layers.\1.fc1."),
        (r"^encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"encoder.layers.\1.fc2."),
    )
]


def hf_state_to_fairseq(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename transformers ``HubertModel`` keys to fairseq's (which our network uses).

    Strips a ``hubert.`` prefix (task heads), drops head weights, maps weight-norm
    parametrization names to ``weight_g``/``weight_v``.  ``final_proj.*``,
    ``encoder.layer_norm.*`` and ``*.final_layer_norm.*`` keep their names.
    """
    state = rename_parametrized_keys(state)
    if any(key.startswith("hubert.") for key in state):
        state = {key[len("hubert.") :]: value for key, value in state.items() if key.startswith("hubert.")}
    renamed = {}
    for key, value in state.items():
        if key.startswith(_HF_HEAD_PREFIXES):
            continue
        for pattern, replacement in _HF_KEY_RULES:
            key = pattern.sub(replacement, key)
        renamed[key] = value
    return renamed


def safetensors_loader() -> Callable[[str], Mapping[str, torch.Tensor]] | None:
    """``safetensors.torch.load_file``, or None when the package is not installed."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        return None
    return load_file


def read_hf_hubert(
    folder: Path, *, find_safetensors: Callable[[], Callable[[str], Any] | None] = safetensors_loader
) -> HubertCheckpoint:
    """Config, weights and ``do_normalize`` of a Hugging Face folder; ``ModelFileError`` if unusable.

    ``find_safetensors`` returns the safetensors reader, or None when the package is missing.
    """
    hf_config = _read_json(folder / "config.json")
    if hf_config.get("model_type") != "hubert":
        raise ModelFileError(
            f"'{folder / 'config.json'}' describes a {hf_config.get('model_type')!r} model; "
            f"only HuBERT/ContentVec (model_type 'hubert') can be the content encoder. {DOWNLOAD_HINT}."
        )
    state = _fold_plain_pos_conv(hf_state_to_fairseq(_read_hf_weights(folder, find_safetensors)))
    if not _looks_like_hubert(state):
        raise ModelFileError(f"The weights in '{folder}' are not HuBERT weights (no conv front end or encoder).")
    try:
        config = hubert_config_from_hf(hf_config, use_post_extract_proj=True, **_state_overrides(state))
    except ValueError as exc:
        raise ModelFileError(f"Cannot use '{folder}' as the content encoder: {exc}.") from exc
    preprocessor = folder / "preprocessor_config.json"
    normalize = bool(_read_json(preprocessor).get("do_normalize")) if preprocessor.is_file() else False
    return HubertCheckpoint(config, state, normalize)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"Could not read '{path}': {exc}. Download or copy the model folder again.") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"'{path}' does not hold a JSON object; it is not a model config.")
    return data


def _read_hf_weights(folder: Path, find_safetensors: Callable[[], Any]) -> Mapping[str, torch.Tensor]:
    safetensors_path, bin_path = folder / "model.safetensors", folder / "pytorch_model.bin"
    load_safetensors = find_safetensors() if safetensors_path.is_file() else None
    if load_safetensors is not None:
        try:
            return load_safetensors(str(safetensors_path))
        except Exception as exc:  # safetensors raises its own error types
            raise ModelFileError(f"Could not read '{safetensors_path}': {exc}. Download it again.") from exc
    if bin_path.is_file():
        state = load_torch_file(bin_path)
        if not isinstance(state, Mapping):
            raise ModelFileError(f"'{bin_path}' does not hold a state dict; download it again.")
        return state
    if safetensors_path.is_file():
        raise ModelFileError(
            f"'{safetensors_path}' needs the 'safetensors' package (pip install safetensors), "
            "or put a pytorch_model.bin in the folder instead."
        )
    raise ModelFileError(f"'{folder}' has config.json but no pytorch_model.bin or model.safetensors.")


# ---- shared -----------------------------------------------------------------------------------


def _looks_like_hubert(state: Mapping[str, Any]) -> bool:
    return "feature_extractor.conv_layers.0.0.weight" in state and "encoder.layers.0.fc1.weight" in state


def _state_overrides(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Config fields only the weights tell: final_proj width and the training-only tensors."""
    final = state.get("final_proj.weight")
    final_dim = int(final.shape[0]) if final is not None else 0
    labels = state.get("label_embs_concat")
    keep_labels = labels is not None and labels.dim() == 2 and labels.shape[1] == final_dim
    return {
        "final_dim": final_dim,
        "num_classes": int(labels.shape[0]) if keep_labels else 0,
        "mask_emb": "mask_emb" in state,
    }


def _fold_plain_pos_conv(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Exports without weight norm store ``pos_conv.0.weight``; split it into g (norm per tap) and v."""
    weight = state.pop("encoder.pos_conv.0.weight", None)
    if weight is not None and "encoder.pos_conv.0.weight_v" not in state:
        state["encoder.pos_conv.0.weight_g"] = weight.float().norm(dim=(0, 1), keepdim=True)
        state["encoder.pos_conv.0.weight_v"] = weight
    return state


def _not_hubert_message(path: Path, checkpoint: Any) -> str:
    kind = "an unknown kind of file"
    if isinstance(checkpoint, Mapping):
        keys = {str(key) for key in checkpoint}
        if {"weight", "config"} <= keys:
            kind = "an RVC voice model (.pth from assets/weights)"
        elif {"model", "optimizer", "iteration"} <= keys:
            kind = "an RVC training checkpoint (G_/D_*.pth)"
        elif any(key.startswith(("unet.", "fc.0.gru")) for key in keys):
            kind = "the RMVPE pitch model (rmvpe.pt)"
    return f"'{path}' is not a HuBERT/ContentVec checkpoint; it looks like {kind}. {DOWNLOAD_HINT}."
