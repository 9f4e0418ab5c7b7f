"""Content features (HuBERT / ContentVec) from 16 kHz audio, without fairseq.

:func:`load_content_encoder` reads either RVC's fairseq checkpoint
(``assets/hubert/hubert_base.pt``) or a Hugging Face folder (``config.json`` +
``pytorch_model.bin``/``model.safetensors``) and returns a
:class:`ContentEncoder`.  ``encoder.extract(wav16k, "v1")`` gives (T, 256)
features (layer 9 + ``final_proj``), ``"v2"`` gives (T, 768) (layer 12), with
T = (N - 400) // 320 + 1 for N samples.  Reading the two file formats lives
in :mod:`infer.content_formats`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from infer.content_formats import DOWNLOAD_HINT, read_fairseq_hubert, read_hf_hubert
from infer.content_formats import safetensors_loader as _safetensors_loader
from infer.models.hubert import Hubert, HubertConfig
from infer.models.weight_norm import remove_all_weight_norm
from infer.safe_load import ModelFileError

VERSION_OUTPUT_LAYERS = {"v1": 9, "v2": 12}
"""Transformer layer (1-based) read for each RVC model version; v1 also applies final_proj."""


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
                f"Use a v2 voice model, or {DOWNLOAD_HINT}."
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
        raise ModelFileError(f"Content encoder not found: '{path}'. {DOWNLOAD_HINT}.")
    hf_folder = _hf_folder(path)
    if hf_folder is not None:
        # _safetensors_loader is looked up here, at call time, so tests can stand in for a missing package.
        source, checkpoint = hf_folder, read_hf_hubert(hf_folder, find_safetensors=_safetensors_loader)
    else:
        source, checkpoint = path, read_fairseq_hubert(path)
    network = _build(source, checkpoint.config, checkpoint.state)
    return ContentEncoder(network, device=device, dtype=dtype, normalize=checkpoint.normalize, source=path)


def _hf_folder(path: Path) -> Path | None:
    """The Hugging Face folder ``path`` names (the folder, or a file in it), or None for a single file."""
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
            f"The file is damaged or is a different model. {DOWNLOAD_HINT}."
        )
    network.load_state_dict({key: value.float() for key, value in state.items()}, assign=True)
    return network
