"""Synthesizer hyper-parameters, RVC's presets and its positional config list.

RVC stores a model's constructor arguments as an 18-item list (spec §1.3).  We
keep that list in files for compatibility and use the named, validated
:class:`SynthesizerConfig` everywhere in code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

VERSIONS = ("v1", "v2")
FEATURE_DIMS = {"v1": 256, "v2": 768}
SAMPLE_RATE_TAGS = {"32k": 32000, "40k": 40000, "48k": 48000}


def sample_rate_from_tag(tag: str | int) -> int:
    """``"40k"`` → 40000; an int (or numeric string) passes through."""
    if isinstance(tag, int):
        return tag
    text = str(tag).strip().lower()
    if text in SAMPLE_RATE_TAGS:
        return SAMPLE_RATE_TAGS[text]
    if text.isdigit():
        return int(text)
    raise ValueError(f"Unknown sample rate {tag!r}; expected one of 32k, 40k, 48k.")


def tag_from_sample_rate(sample_rate: int) -> str:
    """40000 → ``"40k"``."""
    for tag, rate in SAMPLE_RATE_TAGS.items():
        if rate == sample_rate:
            return tag
    return f"{sample_rate // 1000}k"


SAMPLE_RATES = tuple(SAMPLE_RATE_TAGS.values())
_SIZES = (
    "spec_channels",
    "segment_size",
    "inter_channels",
    "hidden_channels",
    "filter_channels",
    "n_heads",
    "n_layers",
    "kernel_size",
    "upsample_initial_channel",
    "spk_embed_dim",
    "gin_channels",
    "feature_dim",
)
_SIZE_LISTS = ("resblock_kernel_sizes", "resblock_dilation_sizes", "upsample_rates", "upsample_kernel_sizes")


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _int_tuple(values: Sequence[Any]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class SynthesizerConfig:
    """Everything needed to build a :class:`~infer.models.synthesizer.Synthesizer`.

    The first 18 fields are RVC's config list, in order (spec §1.3);
    ``feature_dim`` (256 for v1, 768 for v2) and ``use_f0`` pick the variant.
    """

    spec_channels: int
    segment_size: int
    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    p_dropout: float
    resblock: str
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    upsample_rates: tuple[int, ...]
    upsample_initial_channel: int
    upsample_kernel_sizes: tuple[int, ...]
    spk_embed_dim: int
    gin_channels: int
    sample_rate: int
    feature_dim: int = 768
    use_f0: bool = True

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be a positive whole number, got {getattr(self, name)!r}"
            for name in _SIZES
            if not _positive_int(getattr(self, name))
        ]
        for name in _SIZE_LISTS:
            values = getattr(self, name)
            flat = [v for group in values for v in group] if name == "resblock_dilation_sizes" else list(values)
            if not flat or not all(_positive_int(v) for v in flat):
                problems.append(f"{name} must be positive whole numbers, got {values!r}")
        if self.sample_rate not in SAMPLE_RATES:
            problems.append(f"sample_rate must be 32000, 40000 or 48000 (Hz), got {self.sample_rate!r}")
        if not isinstance(self.p_dropout, (int, float)) or not 0 <= self.p_dropout < 1:
            problems.append(f"p_dropout must be a number from 0 to below 1, got {self.p_dropout!r}")
        if self.resblock not in ("1", "2"):
            problems.append(f"resblock must be '1' or '2', got {self.resblock!r}")
        if problems:
            raise ValueError("; ".join(problems))
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError(
                f"upsample_rates {self.upsample_rates} and upsample_kernel_sizes "
                f"{self.upsample_kernel_sizes} must have the same length"
            )
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes must have the same length")
        if self.hidden_channels % self.n_heads:
            raise ValueError(f"hidden_channels {self.hidden_channels} is not divisible by n_heads {self.n_heads}")

    @property
    def hop_length(self) -> int:
        """Output samples per feature frame (= product of the upsample rates)."""
        return math.prod(self.upsample_rates)

    def to_rvc_list(self) -> list[Any]:
        """The 18-item list RVC stores in ``config`` (plain ints, strs and lists)."""
        return [
            int(self.spec_channels),
            int(self.segment_size),
            int(self.inter_channels),
            int(self.hidden_channels),
            int(self.filter_channels),
            int(self.n_heads),
            int(self.n_layers),
            int(self.kernel_size),
            int(self.p_dropout) if float(self.p_dropout).is_integer() else float(self.p_dropout),
            str(self.resblock),
            [int(k) for k in self.resblock_kernel_sizes],
            [[int(d) for d in ds] for ds in self.resblock_dilation_sizes],
            [int(u) for u in self.upsample_rates],
            int(self.upsample_initial_channel),
            [int(k) for k in self.upsample_kernel_sizes],
            int(self.spk_embed_dim),
            int(self.gin_channels),
            int(self.sample_rate),
        ]

    @classmethod
    def from_rvc_list(cls, config: Sequence[Any], *, feature_dim: int, use_f0: bool) -> SynthesizerConfig:
        """Build from RVC's 18-item list; the last item may be an int or a tag like ``"40k"``."""
        if len(config) != 18:
            raise ValueError(f"RVC config list must have 18 items, got {len(config)}")
        values = {}
        for position, (name, value) in enumerate(zip(_RVC_LIST_FIELDS, config)):
            try:
                values[name] = _RVC_LIST_READERS.get(name, int)(value)
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"{name} (config item {position}) is unusable: {value!r}") from None
        return cls(**values, feature_dim=int(feature_dim), use_f0=bool(use_f0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (lists instead of tuples)."""
        data = asdict(self)
        return {
            k: (list(map(list, v)) if k == "resblock_dilation_sizes" else list(v) if isinstance(v, tuple) else v)
            for k, v in data.items()
        }

    def with_(self, **changes: Any) -> SynthesizerConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


_RVC_LIST_FIELDS = tuple(f.name for f in fields(SynthesizerConfig))[:18]
_RVC_LIST_READERS: dict[str, Callable[[Any], Any]] = {
    "p_dropout": float,
    "resblock": str,
    "resblock_kernel_sizes": _int_tuple,
    "resblock_dilation_sizes": lambda groups: tuple(_int_tuple(g) for g in groups),
    "upsample_rates": _int_tuple,
    "upsample_kernel_sizes": _int_tuple,
    "sample_rate": sample_rate_from_tag,
}


@dataclass(frozen=True)
class AudioPreset:
    """The data/STFT side of an RVC preset (spec §5.1), used by training."""

    sample_rate: int
    filter_length: int  # n_fft (= win_length)
    hop_length: int
    n_mel_channels: int
    segment_size: int  # samples


# (config file, sr) -> (n_fft, hop, mels, segment samples, upsample rates, upsample kernels)
_PRESET_TABLE: dict[tuple[str, int], tuple[int, int, int, int, tuple[int, ...], tuple[int, ...]]] = {
    ("v1", 32000): (1024, 320, 80, 12800, (10, 4, 2, 2, 2), (16, 16, 4, 4, 4)),
    ("v1", 40000): (2048, 400, 125, 12800, (10, 10, 2, 2), (16, 16, 4, 4)),
    ("v1", 48000): (2048, 480, 128, 11520, (10, 6, 2, 2, 2), (16, 16, 4, 4, 4)),
    ("v2", 32000): (1024, 320, 80, 12800, (10, 8, 2, 2), (20, 16, 4, 4)),
    ("v2", 48000): (2048, 480, 128, 17280, (12, 10, 2, 2), (24, 20, 4, 4)),
}


def _preset_key(version: str, sample_rate: int) -> tuple[str, int]:
    if version not in VERSIONS:
        raise ValueError(f"Unknown model version {version!r}; expected 'v1' or 'v2'.")
    if sample_rate not in SAMPLE_RATE_TAGS.values():
        raise ValueError(f"Unsupported sample rate {sample_rate}; expected 32000, 40000 or 48000.")
    # RVC has no v2/40k config: v2 at 40k uses v1/40k.json (spec §5.1).
    return ("v1" if version == "v1" or sample_rate == 40000 else "v2", sample_rate)


def audio_preset(version: str, sample_rate: int | str) -> AudioPreset:
    """STFT and segment settings RVC trains ``version`` at ``sample_rate`` with."""
    sr = sample_rate_from_tag(sample_rate)
    n_fft, hop, mels, segment, _, _ = _PRESET_TABLE[_preset_key(version, sr)]
    return AudioPreset(sr, n_fft, hop, mels, segment)


def preset(version: str, sample_rate: int | str, use_f0: bool = True, **overrides: Any) -> SynthesizerConfig:
    """RVC's full-size synthesizer config for a version/rate/pitch choice.

    ``segment_size`` is 32, the value RVC writes into small models; training
    uses the preset's segment in frames (``audio_preset(...).segment_size //
    hop``).  ``overrides`` replace fields (tests use it for tiny models).
    """
    sr = sample_rate_from_tag(sample_rate)
    n_fft, _, _, _, rates, kernels = _PRESET_TABLE[_preset_key(version, sr)]
    cfg = SynthesizerConfig(
        spec_channels=n_fft // 2 + 1,
        segment_size=32,
        inter_channels=192,
        hidden_channels=192,
        filter_channels=768,
        n_heads=2,
        n_layers=6,
        kernel_size=3,
        p_dropout=0,
        resblock="1",
        resblock_kernel_sizes=(3, 7, 11),
        resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        upsample_rates=rates,
        upsample_initial_channel=512,
        upsample_kernel_sizes=kernels,
        spk_embed_dim=109,
        gin_channels=256,
        sample_rate=sr,
        feature_dim=FEATURE_DIMS[version],
        use_f0=use_f0,
    )
    return replace(cfg, **overrides) if overrides else cfg


def tiny_config(
    version: str = "v2", sample_rate: int | str = 40000, use_f0: bool = True, **overrides: Any
) -> SynthesizerConfig:
    """A very small config with the preset's upsampling (for fast tests and demos)."""
    base = dict(
        inter_channels=8,
        hidden_channels=8,
        filter_channels=16,
        n_heads=2,
        n_layers=1,
        upsample_initial_channel=32,
        gin_channels=8,
        spk_embed_dim=4,
    )
    base.update(overrides)
    return preset(version, sample_rate, use_f0, **base)
