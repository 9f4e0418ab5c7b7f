"""Content features (HuBERT / ContentVec) from 16 kHz audio, without fairseq.

:func:`load_content_encoder` reads either RVC's fairseq checkpoint
(``assets/hubert/hubert_base.pt``) or a Hugging Face folder (``config.json`` +
``pytorch_model.bin``/``model.safetensors``) and returns a
:class:`ContentEncoder`.  ``encoder.extract(wav16k, "v1")`` gives (T, 256)
features (layer 9 + ``final_proj``), ``"v2"`` gives (T, 768) (layer 12), with
T = (N - 400) // 320 + 1 for N samples.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from infer.models.hubert import Hubert, HubertConfig
from infer.models.weight_norm import remove_all_weight_norm, rename_parametrized_keys
from infer.safe_load import ModelFileError, load_torch_file

VERSION_OUTPUT_LAYERS = {"v1": 9, "v2": 12}
"""Transformer layer (1-based) read for each RVC model version; v1 also applies final_proj."""

_DOWNLOAD_HINT = (
    "RVC's content encoder is assets/hubert/hubert_base.pt from the Hugging Face repo lj1995/VoiceConversionWebUI"
)


class ContentEncoder:
    """A loaded HuBERT/ContentVec network on one device, ready for inference.

    Attributes: ``device``, ``dtype`` (of the weights and the returned
    tensors), ``embed_dim`` (v2 feature width, 768 for hubert_base),
    ``final_dim`` (v1 feature width, 256; None if the model has no
    ``final_proj``), ``num_layers``, ``min_samples`` (shortest input, 400)
    and ``normalize`` (the checkpoint's ``task.normalize``: if true the
    waveform gets a whole-utterance layer norm first, as in fairseq training).
    Calls keep no state on the object, so one encoder may serve several
    threads at once.
    """

    def __init__(
        self,
        network: Hubert,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        normalize: bool = False,
        source: str | Path | None = None,
    ) -> None:
        """Takes ownership of ``network``: folds its weight norm, casts and moves it."""
        self.device = torch.device(device)
        if dtype is None:
            dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.dtype = dtype
        self.normalize = bool(normalize)
        self.source = None if source is None else Path(source)
        remove_all_weight_norm(network)  # a fixed weight: no per-call hook state, thread-safe
        self.network = network.eval().requires_grad_(False).to(device=self.device, dtype=self.dtype)
        config = network.config
        self.embed_dim = config.embed_dim
        self.final_dim = config.final_dim or None
        self.num_layers = config.num_layers
        self.min_samples = config.min_samples

    def __repr__(self) -> str:
        return (
            f"ContentEncoder(source={str(self.source)!r}, device={self.device}, dtype={self.dtype}, "
            f"embed_dim={self.embed_dim}, final_dim={self.final_dim}, num_layers={self.num_layers})"
        )

    def num_frames(self, num_samples: int) -> int:
        """Feature frames for ``num_samples`` at 16 kHz: (N - 400) // 320 + 1 for hubert_base."""
        return self.network.config.num_frames(num_samples)

    def feature_dim(self, version: str) -> int:
        """Width of the features ``extract`` returns for ``version`` ("v1" or "v2")."""
        self._output_layer(version)
        if version == "v1":
            return self._require_final_proj()
        return self.embed_dim

    def extract(self, wav16k: np.ndarray | torch.Tensor, version: str) -> np.ndarray:
        """Features for a mono 16 kHz float waveform, float32 numpy (T, D).

        ``wav16k``: shape (N,) (or (1, N)), any float dtype, numpy or torch,
        N >= 400.  ``version`` "v1": layer 9 + final_proj, D = ``final_dim``;
        "v2": layer 12, D = ``embed_dim``.
        """
        return self.extract_tensor(wav16k, version)[0].float().cpu().numpy()

    def extract_tensor(self, wav16k: np.ndarray | torch.Tensor, version: str) -> torch.Tensor:
        """As :meth:`extract`, but a tensor (1, T, D) on ``device`` in ``dtype``.

        The result is an ordinary tensor (not an inference-mode one), so callers
        may modify it in place.
        """
        output_layer = self._output_layer(version)
        if version == "v1":
            self._require_final_proj()
        source = self._prepare(wav16k)
        with torch.inference_mode():
            features = self.network.extract_features(source, output_layer)
            if version == "v1":
                features = self.network.final_proj(features)
        return features.clone()

    def _output_layer(self, version: str) -> int:
        if version not in VERSION_OUTPUT_LAYERS:
            raise ValueError(f"Unknown model version {version!r}; expected one of {sorted(VERSION_OUTPUT_LAYERS)}.")
        layer = VERSION_OUTPUT_LAYERS[version]
        if layer > self.num_layers:
            raise ValueError(
                f"{version} features come from transformer layer {layer}, but the content encoder "
                f"'{self.source}' has only {self.num_layers} layers."
            )
        return layer

    def _require_final_proj(self) -> int:
        if self.final_dim is None:
            raise ValueError(
                f"The content encoder '{self.source}' has no final_proj layer, which v1 models need. "
                f"Use a v2 voice model, or {_DOWNLOAD_HINT}."
            )
        return self.final_dim

    def _prepare(self, wav16k: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Validate and convert the waveform to a (1, N) tensor on device, in the model dtype."""
        if isinstance(wav16k, np.ndarray):
            if not np.issubdtype(wav16k.dtype, np.floating):
                raise ValueError(_not_float_message(wav16k.dtype))
            wav = torch.from_numpy(np.ascontiguousarray(wav16k, dtype=np.float32))
        elif isinstance(wav16k, torch.Tensor):
            if not wav16k.is_floating_point():
                raise ValueError(_not_float_message(wav16k.dtype))
            wav = wav16k.detach()
        else:
            raise TypeError(f"Expected a numpy array or torch tensor waveform, got {type(wav16k).__name__}.")
        if wav.dim() == 2 and wav.shape[0] == 1:
            wav = wav[0]
        if wav.dim() != 1:
            raise ValueError(f"Expected a mono waveform of shape (N,), got shape {tuple(wav.shape)}; mix down to mono.")
        if wav.shape[0] < self.min_samples:
            raise ValueError(
                f"Waveform too short: {wav.shape[0]} samples; the content encoder needs at least "
                f"{self.min_samples} samples ({self.min_samples / 16:g} ms at 16 kHz)."
            )
        wav = wav.to(device=self.device, dtype=torch.float32).unsqueeze(0)
        if self.normalize:
            wav = F.layer_norm(wav, wav.shape[-1:])
        return wav.to(self.dtype)


def _not_float_message(dtype: Any) -> str:
    return (
        f"Expected a float waveform in [-1, 1], got dtype {dtype}; "
        "convert integer PCM first (for int16: samples / 32768)."
    )


def load_content_encoder(
    path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> ContentEncoder:
    """Load RVC's ``hubert_base.pt`` (fairseq format) or a Hugging Face HuBERT/ContentVec folder.

    ``path``: the ``.pt`` file, or a folder with ``config.json`` (or the path
    of that ``config.json``).  ``dtype`` None means float16 on CUDA, else
    float32.  Raises :class:`~infer.safe_load.ModelFileError` when the file is
    missing, unreadable or not a HuBERT checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"Content encoder not found: '{path}'. {_DOWNLOAD_HINT}.")
    hf_folder = _hf_folder(path)
    if hf_folder is not None:
        network, normalize = _load_hf(hf_folder)
    else:
        network, normalize = _load_fairseq(path)
    return ContentEncoder(network, device=device, dtype=dtype, normalize=normalize, source=path)


def _hf_folder(path: Path) -> Path | None:
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelFileError(
                f"'{path}' is a folder without config.json. Pass the hubert_base.pt file, "
                "or a Hugging Face model folder (config.json + pytorch_model.bin or model.safetensors)."
            )
        return path
    weight_names = ("config.json", "pytorch_model.bin", "model.safetensors")
    if path.name in weight_names and (path.parent / "config.json").is_file():
        return path.parent
    return None


# ---- fairseq checkpoint (RVC's hubert_base.pt) -------------------------------------------------


def _load_fairseq(path: Path) -> tuple[Hubert, bool]:
    checkpoint = load_torch_file(path)
    state = checkpoint.get("model") if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping) or not _looks_like_hubert(state):
        raise ModelFileError(_not_hubert_message(path, checkpoint))
    model_cfg, task_cfg = _fairseq_sections(path, checkpoint)
    state = _fold_plain_pos_conv(dict(state))
    overrides = _state_overrides(state)
    try:
        config = HubertConfig.from_fairseq(model_cfg, **overrides)
    except ValueError as exc:
        raise ModelFileError(f"Cannot use '{path}' as the content encoder: {exc}.") from exc
    return _build(path, config, state), bool(task_cfg.get("normalize") or False)


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
        f"the file is incomplete. {_DOWNLOAD_HINT}."
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


def _load_hf(folder: Path) -> tuple[Hubert, bool]:
    hf_config = _read_json(folder / "config.json")
    if hf_config.get("model_type") != "hubert":
        raise ModelFileError(
            f"'{folder / 'config.json'}' describes a {hf_config.get('model_type')!r} model; "
            f"only HuBERT/ContentVec (model_type 'hubert') can be the content encoder. {_DOWNLOAD_HINT}."
        )
    state = _fold_plain_pos_conv(hf_state_to_fairseq(_read_hf_weights(folder)))
    if not _looks_like_hubert(state):
        raise ModelFileError(f"The weights in '{folder}' are not HuBERT weights (no conv front end or encoder).")
    try:
        config = HubertConfig.from_hf(hf_config, use_post_extract_proj=True, **_state_overrides(state))
    except ValueError as exc:
        raise ModelFileError(f"Cannot use '{folder}' as the content encoder: {exc}.") from exc
    preprocessor = folder / "preprocessor_config.json"
    normalize = bool(_read_json(preprocessor).get("do_normalize")) if preprocessor.is_file() else False
    return _build(folder, config, state), normalize


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"Could not read '{path}': {exc}. Download or copy the model folder again.") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"'{path}' does not hold a JSON object; it is not a model config.")
    return data


def _safetensors_loader():
    """``safetensors.torch.load_file``, or None when the package is not installed."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        return None
    return load_file


def _read_hf_weights(folder: Path) -> Mapping[str, torch.Tensor]:
    safetensors_path, bin_path = folder / "model.safetensors", folder / "pytorch_model.bin"
    load_safetensors = _safetensors_loader() if safetensors_path.is_file() else None
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


def _build(path: Path, config: HubertConfig, state: Mapping[str, torch.Tensor]) -> Hubert:
    """The network holding ``state`` (float32), after checking names and shapes against ``config``."""
    with torch.device("meta"):  # no random init: the file provides every parameter
        network = Hubert(config)
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong_shape:
        details = [
            f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape))
            if keys
        ]
        raise ModelFileError(
            f"'{path}' does not match the HuBERT layout its config describes ({'; '.join(details)}). "
            f"The file is damaged or is a different model. {_DOWNLOAD_HINT}."
        )
    network.load_state_dict({key: value.float() for key, value in state.items()}, assign=True)
    return network


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
    return f"'{path}' is not a HuBERT/ContentVec checkpoint; it looks like {kind}. {_DOWNLOAD_HINT}."
