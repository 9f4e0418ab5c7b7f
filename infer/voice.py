"""A loaded voice: the synthesizer built from a small model, ready for inference."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from infer.checkpoints import SmallModel, check_finite_weights, read_small_model
from infer.models.synthesizer import Synthesizer
from infer.safe_load import ModelFileError

log = logging.getLogger(__name__)


@dataclass
class Voice:
    """A voice model loaded for conversion.

    ``synthesizer`` is in eval mode, without the posterior encoder and (by
    default) with weight norm folded.  It maps content features (1, T, D) at
    100 frames/s plus pitch to audio at ``sample_rate``.
    """

    synthesizer: Synthesizer
    sample_rate: int
    version: str
    use_f0: bool
    n_speakers: int
    info: str
    feature_dim: int
    path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.stem if self.path else "voice"

    @property
    def device(self) -> torch.device:
        return next(self.synthesizer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.synthesizer.parameters()).dtype


def voice_from_small_model(
    model: SmallModel,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    fuse_weight_norm: bool = True,
    path: Path | None = None,
) -> Voice:
    """Build a :class:`Voice` from an in-memory :class:`SmallModel`."""
    where = f"'{path}'" if path else "The voice model"
    weight = {k: v.float() for k, v in model.weight.items()}
    check_finite_weights(weight, where, "Extract it again from a good checkpoint, or download it again.")
    synthesizer = Synthesizer.from_config(model.config, with_posterior=False)
    try:
        synthesizer.load_state_dict(weight, strict=True)
    except RuntimeError as exc:
        expected = set(synthesizer.state_dict())
        missing, unexpected = sorted(expected - set(weight)), sorted(set(weight) - expected)
        detail = f"missing {missing[:3]}, unexpected {unexpected[:3]}" if missing or unexpected else ""
        raise ModelFileError(
            f"{where} does not match its own config ({detail or str(exc).splitlines()[-1][:200]}). "
            "It was probably extracted with the wrong sample rate or version; extract it again with the "
            "experiment's settings."
        ) from exc
    if fuse_weight_norm:
        synthesizer.remove_weight_norm()
    synthesizer.eval().to(device=device, dtype=dtype)
    return Voice(
        synthesizer=synthesizer,
        sample_rate=model.sample_rate,
        version=model.version,
        use_f0=model.use_f0,
        n_speakers=model.n_speakers,
        info=model.info,
        feature_dim=model.config.feature_dim,
        path=path,
        metadata=dict(model.metadata),
        warnings=list(model.warnings),
    )


def load_voice(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    fuse_weight_norm: bool = True,
) -> Voice:
    """Load an RVC small model (``weights/<name>.pth``) for inference.

    Returns a :class:`Voice` whose ``synthesizer`` is an ``nn.Module`` in eval
    mode on ``device`` in ``dtype`` (float32 on the CPU by default).  Old files
    without ``version``/``f0`` and files with any speaker count load; a G_/D_
    checkpoint or a file that is no voice model raises :class:`ModelFileError`
    with what to do.
    """
    path = Path(path)
    model = read_small_model(path)
    for warning in model.warnings:
        log.warning(warning)
    return voice_from_small_model(model, device=device, dtype=dtype, fuse_weight_norm=fuse_weight_norm, path=path)
