"""An experiment folder ``logs/<name>/``: its paths and its frozen, validated config.

The config is written to ``logs/<name>/config.json`` at the first run, in RVC's
layout (``train``/``data``/``model`` sections, so RVC's own trainer can read
it) plus an ``rvc_studio`` section naming the version, sample rate and pitch
setting.  A later run that asks for something else is refused with a message
saying what to do (RVC silently kept the old config and crashed later: FAQ Q18).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from infer.atomic import atomic_write_text
from infer.models.config import (
    FEATURE_DIMS,
    SynthesizerConfig,
    audio_preset,
    preset,
    sample_rate_from_tag,
    tag_from_sample_rate,
)

CONFIG_FORMAT = 1


class ExperimentError(ValueError):
    """The experiment folder or its config does not fit the request; the message says what to do."""


@dataclass(frozen=True)
class ExperimentPaths:
    """RVC's folder names inside ``logs/<name>/`` (spec §1.2), defined once."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    gt_wavs = property(lambda self: self.root / "0_gt_wavs")
    wavs16k = property(lambda self: self.root / "1_16k_wavs")
    f0_coarse = property(lambda self: self.root / "2a_f0")
    f0_hz = property(lambda self: self.root / "2b-f0nsf")
    config = property(lambda self: self.root / "config.json")
    filelist = property(lambda self: self.root / "filelist.txt")
    train_log = property(lambda self: self.root / "train.log")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    preprocess_log = property(lambda self: self.root / "preprocess.log")
    preprocess_report = property(lambda self: self.root / "preprocess_report.json")
    extract_log = property(lambda self: self.root / "extract_f0_feature.log")
    stop_file = property(lambda self: self.root / "STOP")
    lock_file = property(lambda self: self.root / "experiment.lock")  # train/lock.py

    def features(self, version: str) -> Path:
        """``3_feature256`` (v1) or ``3_feature768`` (v2)."""
        return self.root / f"3_feature{FEATURE_DIMS[version]}"

    def data_folders(self) -> list[Path]:
        """The folder itself and those of its pieces, pitch and features (existing or not)."""
        return [self.root, self.gt_wavs, self.wavs16k, self.f0_coarse, self.f0_hz, *map(self.features, FEATURE_DIMS)]


def remove_stale_temp_files(
    paths: ExperimentPaths, *, older_than: float, log: Callable[[str], None] | None = None
) -> list[Path]:
    """Remove the temporary files a killed write left (``.<name>.<random>.tmp``, as :mod:`infer.atomic` names
    them) from the experiment's folders; returns them.

    Only files last changed before ``older_than`` (a ``time.time()`` value) go:
    call it while holding the experiment's lock (:mod:`train.lock`), so that
    no other process of ours is writing them.
    """
    removed = []
    for folder in paths.data_folders():
        if not folder.is_dir():
            continue
        for path in folder.glob(".*.tmp"):
            try:
                if path.is_file() and path.stat().st_mtime < older_than:
                    path.unlink()
                    removed.append(path)
            except OSError:
                continue  # gone already, or not ours to remove
    if removed and log is not None:
        log(f"removed {len(removed)} temporary file(s) left by an interrupted run in '{paths.root}'")
    return removed


@dataclass(frozen=True)
class TrainHParams:
    """RVC's ``train`` section (spec §5.1); ``segment_size`` is in samples."""

    log_interval: int = 200
    seed: int = 1234
    epochs: int = 20000
    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.8, 0.99)
    eps: float = 1e-9
    batch_size: int = 4
    fp16_run: bool = True
    lr_decay: float = 0.999875
    segment_size: int = 12800
    init_lr_ratio: float = 1
    warmup_epochs: int = 0
    c_mel: float = 45
    c_kl: float = 1.0


@dataclass(frozen=True)
class DataHParams:
    """RVC's ``data`` section."""

    sampling_rate: int
    filter_length: int
    hop_length: int
    win_length: int
    n_mel_channels: int
    max_wav_value: float = 32768.0
    mel_fmin: float = 0.0
    mel_fmax: float | None = None


_MODEL_SECTION = (
    "inter_channels",
    "hidden_channels",
    "filter_channels",
    "n_heads",
    "n_layers",
    "kernel_size",
    "p_dropout",
    "resblock",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
    "upsample_rates",
    "upsample_initial_channel",
    "upsample_kernel_sizes",
    "gin_channels",
    "spk_embed_dim",
)


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines how an experiment trains; frozen at its first run."""

    name: str
    version: str
    sample_rate: int
    use_f0: bool
    model: SynthesizerConfig
    data: DataHParams
    train: TrainHParams = field(default_factory=TrainHParams)
    speaker_id: int = 0
    f0_method: str | None = None
    content_encoder: str = "hubert_base"

    def __post_init__(self) -> None:
        if self.version not in FEATURE_DIMS:
            raise ExperimentError(f"Unknown version {self.version!r}; use v1 or v2.")
        if self.model.hop_length != self.data.hop_length:
            raise ExperimentError(
                f"upsample rates {self.model.upsample_rates} give hop {self.model.hop_length}, "
                f"but the data hop is {self.data.hop_length}"
            )
        if self.model.sample_rate != self.sample_rate or self.data.sampling_rate != self.sample_rate:
            raise ExperimentError("model, data and experiment sample rates differ")
        if self.train.segment_size % self.data.hop_length:
            raise ExperimentError("train.segment_size must be a multiple of the hop length")

    @classmethod
    def create(
        cls,
        name: str,
        version: str,
        sample_rate: int | str,
        use_f0: bool,
        *,
        model_overrides: dict[str, Any] | None = None,
        train_overrides: dict[str, Any] | None = None,
        **settings: Any,
    ) -> ExperimentConfig:
        """RVC's preset for version/rate (v2 at 40k uses v1/40k, spec §5.1), with optional overrides."""
        sr = sample_rate_from_tag(sample_rate)
        audio = audio_preset(version, sr)
        train = replace(TrainHParams(segment_size=audio.segment_size), **(train_overrides or {}))
        model = preset(version, sr, use_f0, **(model_overrides or {}))
        model = model.with_(segment_size=train.segment_size // audio.hop_length)
        data = DataHParams(sr, audio.filter_length, audio.hop_length, audio.filter_length, audio.n_mel_channels)
        return cls(name, version, sr, bool(use_f0), model, data, train, **settings)

    @property
    def tag(self) -> str:
        return tag_from_sample_rate(self.sample_rate)

    def describe(self) -> str:
        return f"{self.version} {self.tag} {'with' if self.use_f0 else 'without'} pitch guidance"

    def to_json(self) -> dict[str, Any]:
        """RVC's config.json layout plus our ``rvc_studio`` section."""
        model = {k: v for k, v in self.model.to_dict().items() if k in _MODEL_SECTION}
        model["use_spectral_norm"] = False
        train = asdict(self.train)
        train["betas"] = list(self.train.betas)
        ours = {
            "format": CONFIG_FORMAT,
            "name": self.name,
            "version": self.version,
            "sample_rate": self.sample_rate,
            "use_f0": self.use_f0,
            "speaker_id": self.speaker_id,
            "f0_method": self.f0_method,
            "content_encoder": self.content_encoder,
            "feature_dim": self.model.feature_dim,
            "spec_channels": self.model.spec_channels,
        }
        return {"train": train, "data": asdict(self.data), "model": model, "rvc_studio": ours}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExperimentConfig:
        ours = data.get("rvc_studio")
        if not isinstance(ours, dict):
            raise ExperimentError("config.json has no 'rvc_studio' section (made by RVC itself?)")
        if int(ours.get("format", 0)) > CONFIG_FORMAT:
            raise ExperimentError("config.json was written by a newer RVC Studio; update RVC Studio to use it.")
        train_fields = {f.name for f in fields(TrainHParams)}
        train = TrainHParams(
            **{k: (tuple(v) if k == "betas" else v) for k, v in data["train"].items() if k in train_fields}
        )
        dhp = DataHParams(**{k: v for k, v in data["data"].items() if k in {f.name for f in fields(DataHParams)}})
        m = data["model"]
        model = SynthesizerConfig(
            spec_channels=int(ours.get("spec_channels", dhp.filter_length // 2 + 1)),
            segment_size=train.segment_size // dhp.hop_length,
            **{
                k: m[k]
                for k in _MODEL_SECTION
                if k
                not in ("resblock_kernel_sizes", "resblock_dilation_sizes", "upsample_rates", "upsample_kernel_sizes")
            },
            resblock_kernel_sizes=tuple(m["resblock_kernel_sizes"]),
            resblock_dilation_sizes=tuple(tuple(d) for d in m["resblock_dilation_sizes"]),
            upsample_rates=tuple(m["upsample_rates"]),
            upsample_kernel_sizes=tuple(m["upsample_kernel_sizes"]),
            sample_rate=int(ours["sample_rate"]),
            feature_dim=int(ours.get("feature_dim", FEATURE_DIMS[ours["version"]])),
            use_f0=bool(ours["use_f0"]),
        )
        return cls(
            ours["name"],
            ours["version"],
            int(ours["sample_rate"]),
            bool(ours["use_f0"]),
            model,
            dhp,
            train,
            int(ours.get("speaker_id", 0)),
            ours.get("f0_method"),
            ours.get("content_encoder", "hubert_base"),
        )

    def save(self, path: Path) -> Path:
        return atomic_write_text(json.dumps(self.to_json(), indent=4, sort_keys=True, ensure_ascii=False), path)

    @classmethod
    def load(cls, path: Path) -> ExperimentConfig:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ExperimentError(f"Could not read the experiment config '{path}': {exc}") from exc


def check_same_settings(stored: ExperimentConfig, version: str, sample_rate: int | str, use_f0: bool) -> None:
    """Refuse (ExperimentError) a request for another version, rate or pitch setting than ``stored``'s."""
    rate = sample_rate_from_tag(sample_rate)
    if (stored.version, stored.sample_rate, stored.use_f0) == (version, rate, bool(use_f0)):
        return
    wanted = f"{version} {tag_from_sample_rate(rate)} {'with' if use_f0 else 'without'} pitch guidance"
    raise ExperimentError(
        f"Experiment '{stored.name}' was set up for {stored.describe()}, but this run asks for {wanted}. "
        f"Use a new experiment name (the pieces, pitch and feature files can be reused: "
        f"`python -m train reuse --from {stored.name} --to NEW_NAME`), or delete the experiment folder to start over."
    )


def open_experiment(logs_dir: Path, wanted: ExperimentConfig) -> ExperimentConfig:
    """The experiment's config: ``wanted`` on the first run (written), else the stored one.

    A stored config for another version, rate or pitch setting is refused.
    """
    paths = ExperimentPaths(Path(logs_dir) / wanted.name)
    if not paths.config.exists():
        paths.root.mkdir(parents=True, exist_ok=True)
        wanted.save(paths.config)
        return wanted
    stored = ExperimentConfig.load(paths.config)
    try:
        check_same_settings(stored, wanted.version, wanted.sample_rate, wanted.use_f0)
    except ExperimentError as exc:
        raise ExperimentError(f"{exc} (folder: '{paths.root}')") from None
    return stored
