"""Typed requests for the training steps, and the command line each one stands for.

Every step of ``python -m train`` has a request dataclass here.  ``argv()`` is
the argument list that runs it (``[sys.executable, "-m", "train", "<step>",
...]``, flags equal to their default left out) and ``command_line()`` the same
quoted for a terminal (bash, or cmd/PowerShell on Windows).  The command line
parses its flags back into an equal request, and the same request drives the
library call (:mod:`train.steps`), so the "equivalent command" a step prints is
exactly what the CLI would run.

Each field's option is declared once, in its metadata (:class:`~train.flags.FlagSpec`);
the CLI's parser is built from it, so flags and fields cannot drift apart.  Paths
may be given as ``str`` and are stored as :class:`~pathlib.Path`.
"""

from __future__ import annotations

import re
import sys
from dataclasses import MISSING, Field, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from infer.f0 import F0_METHODS
from train.flags import FlagSpec, RequestError, field_default, gpu_ids, option_field, quote_command

SAMPLE_RATE_TAGS = ("32k", "40k", "48k")
VERSIONS = ("v1", "v2")
TRAIN_F0_METHODS = (*F0_METHODS, "rmvpe_gpu")  # RVC's name for RMVPE on the GPUs of --gpus
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
RESERVED_NAMES = frozenset({"mute"})  # logs/mute holds the silent sample every filelist mixes in
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"
R = TypeVar("R", bound="StepRequest")


def _processes() -> Any:
    return option_field(
        "--processes",
        "CPU processes for preprocessing and for pm/harvest/dio pitch extraction (default: "
        "as cores and memory allow; ceil(cores / 1.5) for pitch)",
        None,
        type=int,
        minimum=1,
        group="devices",
    )


def _config_overrides() -> Any:
    return option_field(
        "--config-overrides",
        'JSON {"model": {...}, "train": {...}} applied to the preset when the '
        "experiment is created (small test models)",
        None,
        kind="json",
        metavar="JSON",
        group="advanced",
    )


@dataclass(frozen=True, kw_only=True)
class StepRequest:
    """What every step needs: the experiment's name and where experiments live.

    ``logs_dir`` None is the runtime settings' ``logs/`` (``$RVC_LOGS_DIR``).
    """

    STEP: ClassVar[str] = ""
    name: str = option_field(
        "--name", "experiment name; its files go to <logs-dir>/<name>", aliases=("-e",), metavar="NAME"
    )
    logs_dir: Path | None = option_field(
        "--logs-dir",
        "experiments folder (default: logs/ or $RVC_LOGS_DIR)",
        None,
        type=Path,
        metavar="DIR",
        group="folders",
    )

    def __post_init__(self) -> None:
        for item in fields(self):
            spec: FlagSpec | None = item.metadata.get("flag")
            value = getattr(self, item.name)
            if spec is None or value is None:
                continue
            if spec.type is Path and not isinstance(value, Path):
                object.__setattr__(self, item.name, Path(value))
            elif spec.kind == "pair":
                object.__setattr__(self, item.name, tuple(int(v) for v in value))
            self._check(item, spec, getattr(self, item.name))
        self._check_name(self.name, "--to" if self.STEP == "reuse" else "--name")

    @staticmethod
    def _check(item: Field, spec: FlagSpec, value: Any) -> None:
        if spec.choices and value not in spec.choices:
            raise RequestError(f"{spec.option} must be one of {', '.join(spec.choices)}, got {value!r}.")
        if spec.minimum is not None and (isinstance(value, bool) or int(value) < spec.minimum):
            raise RequestError(f"{spec.option} must be at least {spec.minimum}, got {value!r}.")
        if spec.pattern is not None and not re.match(spec.pattern, str(value)):
            raise RequestError(f"{spec.option} {value!r} is not valid; {spec.help}.")
        if spec.kind == "json" and not isinstance(value, dict):
            raise RequestError(f"{spec.option} must be a JSON object, got {value!r}.")
        if spec.kind == "json" and not set(value) <= {"model", "train"}:
            raise RequestError(f"{spec.option} accepts the sections 'model' and 'train', not {sorted(value)}.")

    @staticmethod
    def _check_name(name: str, option: str) -> None:
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise RequestError(f"{option} must be a non-empty name without leading or trailing spaces, got {name!r}.")
        if name in (".", "..") or any(sep in name for sep in ("/", "\\", "\0")):
            raise RequestError(f"{option} {name!r} is not a folder name; use letters, digits, '-' or '_'.")
        if name in RESERVED_NAMES:
            raise RequestError(f"{option} {name!r} is reserved (logs/{name} holds the silent training sample).")

    def argv(self, *, json_progress: bool = False, python: str | None = None) -> list[str]:
        """``[python, "-m", "train", step, flags...]``; add ``--json-progress`` for machine-read progress."""
        words = [python or sys.executable, "-m", "train", self.STEP]
        for item in fields(self):
            spec = item.metadata.get("flag")
            value = getattr(self, item.name)
            default = field_default(item)
            if spec is not None and (default is MISSING or value != default):
                words += spec.render(value)
        return words + (["--json-progress"] if json_progress else [])

    def command_line(self, *, json_progress: bool = False, windows: bool | None = None) -> str:
        """:meth:`argv` quoted for a terminal (see :func:`quote_command`)."""
        return quote_command(self.argv(json_progress=json_progress), windows=windows)

    def part(self, cls: type[R]) -> R:
        """The request for step ``cls`` made of this request's fields (``all`` runs its steps with these)."""
        return cls(**{item.name: getattr(self, item.name) for item in fields(cls)})


@dataclass(frozen=True, kw_only=True)
class ExperimentRequest(StepRequest):
    """A step that may set the experiment up: its rate, version and pitch setting.

    None means the experiment's stored setting (or, for a new one, the UI's
    default: 40k, v2, with pitch).  A value that contradicts the stored config
    is refused.
    """

    sample_rate: str | None = option_field(
        "--sr", "target sample rate (default: the experiment's, or 40k when new)", None, choices=SAMPLE_RATE_TAGS
    )
    version: str | None = option_field(
        "--version", "model version (default: the experiment's, or v2 when new)", None, choices=VERSIONS
    )
    use_f0: bool | None = option_field(
        "--f0", "pitch guidance (default: the experiment's, or on when new)", None, kind="toggle"
    )

    def __post_init__(self) -> None:
        tag = self.sample_rate
        if isinstance(tag, int) or (isinstance(tag, str) and tag.isdigit()):
            object.__setattr__(self, "sample_rate", f"{int(tag) // 1000}k")
        super().__post_init__()


@dataclass(frozen=True, kw_only=True)
class PreprocessRequest(ExperimentRequest):
    """Step 1: cut the recordings in ``dataset`` into training pieces (``processes`` None: as cores allow).

    It sets a new experiment up; ``config_overrides`` (``{"model": {...},
    "train": {...}}``) then change the preset (small test models).
    """

    STEP: ClassVar[str] = "preprocess"
    dataset: Path = option_field(
        "--dataset", "folder of recordings (sub-folders are read too)", type=Path, metavar="DIR", group="step 1: data"
    )
    processes: int | None = _processes()
    config_overrides: dict | None = _config_overrides()


@dataclass(frozen=True, kw_only=True)
class ExtractRequest(ExperimentRequest):
    """Step 2: pitch (with pitch guidance) and content features of every piece.

    ``gpus`` ("0-1") runs RMVPE and the content encoder in one process per listed
    GPU (repeat an id for two processes on it); without it they run on ``device``.
    """

    STEP: ClassVar[str] = "extract"
    f0_method: str = option_field(
        "--f0-method", "pitch extractor", "rmvpe", choices=TRAIN_F0_METHODS, group="step 2: features"
    )
    processes: int | None = _processes()
    gpus: str | None = option_field(
        "--gpus",
        "GPU ids joined by '-', such as 0-1 (default: none, use --device)",
        None,
        metavar="IDS",
        group="devices",
    )
    device: str | None = option_field(
        "--device",
        "auto, cpu, cuda, cuda:N or mps (default: $RVC_DEVICE or auto)",
        None,
        pattern=DEVICE_PATTERN,
        group="devices",
    )
    assets_dir: Path | None = option_field(
        "--assets-dir",
        "models folder (default: assets/ or $RVC_ASSETS_DIR)",
        None,
        type=Path,
        metavar="DIR",
        group="folders",
    )
    hubert: Path | None = option_field(
        "--hubert",
        "content encoder (default: <assets-dir>/hubert/hubert_base.pt)",
        None,
        type=Path,
        metavar="PATH",
        group="folders",
    )
    rmvpe: Path | None = option_field(
        "--rmvpe",
        "RMVPE weights (default: <assets-dir>/rmvpe/rmvpe.pt)",
        None,
        type=Path,
        metavar="PATH",
        group="folders",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        gpu_ids(self.gpus)


@dataclass(frozen=True, kw_only=True)
class FitRequest(ExperimentRequest):
    """Step 3: write the filelist and train (several GPUs or ``nproc`` > 1: under torchrun).

    ``pretrained_g``/``pretrained_d`` None pick RVC's pretrained files in the
    assets folder when they are there; "" (or "none") trains from scratch; a
    path may also be another experiment's ``G_*.pth``/``D_*.pth`` (FAQ Q15).
    ``batch_size`` is per process; None is the config's (4).
    """

    STEP: ClassVar[str] = "fit"
    speaker_id: int = option_field(
        "--speaker-id", "speaker id written to the filelist", 0, type=int, minimum=0, group="step 3: training"
    )
    epochs: int = option_field(
        "--epochs",
        "total epochs (a resumed run trains up to this one)",
        20,
        type=int,
        minimum=1,
        group="step 3: training",
    )
    save_every: int = option_field(
        "--save-every", "save a G/D checkpoint every N epochs", 5, type=int, minimum=1, group="step 3: training"
    )
    batch_size: int | None = option_field(
        "--batch-size",
        "batch size per process (default: the config's, 4)",
        None,
        type=int,
        minimum=1,
        group="step 3: training",
    )
    latest_only: bool = option_field(
        "--latest-only",
        "keep only the latest checkpoint (G_2333333.pth/D_2333333.pth)",
        False,
        kind="switch",
        group="step 3: training",
    )
    save_small_models: bool = option_field(
        "--save-small-models",
        "also write weights/<name>_e<epoch>_s<step>.pth at each save",
        False,
        kind="switch",
        group="step 3: training",
    )
    pretrained_g: str | None = option_field(
        "--pretrained-g",
        "pretrained generator, '' for none (default: RVC's file in the assets folder, if present)",
        None,
        metavar="PATH",
        group="step 3: training",
    )
    pretrained_d: str | None = option_field(
        "--pretrained-d",
        "pretrained discriminator, '' for none (default: as --pretrained-g)",
        None,
        metavar="PATH",
        group="step 3: training",
    )
    gpus: str | None = option_field(
        "--gpus",
        "GPU ids joined by '-', such as 0-1; several train under torchrun",
        None,
        metavar="IDS",
        group="devices",
    )
    nproc: int | None = option_field(
        "--nproc",
        "training processes under torchrun (default: one per GPU in --gpus)",
        None,
        type=int,
        minimum=1,
        group="devices",
    )
    device: str | None = option_field(
        "--device",
        "auto, cpu, cuda, cuda:N or mps (default: $RVC_DEVICE or auto)",
        None,
        pattern=DEVICE_PATTERN,
        group="devices",
    )
    weights_dir: Path | None = option_field(
        "--weights-dir",
        "where voice models go (default: weights/ or $RVC_WEIGHTS_DIR)",
        None,
        type=Path,
        metavar="DIR",
        group="folders",
    )
    assets_dir: Path | None = option_field(
        "--assets-dir",
        "models folder (default: assets/ or $RVC_ASSETS_DIR)",
        None,
        type=Path,
        metavar="DIR",
        group="folders",
    )
    hubert: Path | None = option_field(
        "--hubert",
        "content encoder, for the silent sample's features (default: <assets-dir>/hubert/hubert_base.pt)",
        None,
        type=Path,
        metavar="PATH",
        group="folders",
    )
    precision: str = option_field("--precision", "training precision", "auto", choices=PRECISIONS, group="advanced")
    num_workers: int = option_field(
        "--num-workers", "DataLoader worker processes", 2, type=int, minimum=0, group="advanced"
    )
    threads: int | None = option_field(
        "--threads", "torch CPU threads per process", None, type=int, minimum=1, group="advanced"
    )
    seed: int | None = option_field(
        "--seed", "random seed (default: the config's, 1234)", None, type=int, group="advanced"
    )
    log_interval: int | None = option_field(
        "--log-interval", "log every N steps (default: the config's, 200)", None, type=int, minimum=1, group="advanced"
    )
    disc_divisors: tuple[int, int] = option_field(
        "--disc-divisors",
        "narrow the discriminator's channels by SCALE and PERIOD (small test models only)",
        (1, 1),
        kind="pair",
        metavar=("SCALE", "PERIOD"),
        group="advanced",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        ids = gpu_ids(self.gpus)
        if self.nproc is not None and ids and self.nproc != len(ids):
            raise RequestError(
                f"--nproc {self.nproc} does not match --gpus {self.gpus} ({len(ids)} GPU(s)); give one of them."
            )
        if len(self.disc_divisors) != 2 or min(self.disc_divisors) < 1:
            raise RequestError(f"--disc-divisors needs two integers of at least 1, got {self.disc_divisors}.")

    @property
    def processes_to_launch(self) -> int:
        """Training processes: ``nproc``, else one per GPU in ``gpus``, else 1."""
        return self.nproc or max(1, len(gpu_ids(self.gpus)))


@dataclass(frozen=True, kw_only=True)
class IndexRequest(StepRequest):
    """Step 4: the retrieval index; ``version`` None is the experiment's.  A copy goes to ``<assets>/indices``."""

    STEP: ClassVar[str] = "index"
    version: str | None = option_field("--version", "model version (default: the experiment's)", None, choices=VERSIONS)
    assets_dir: Path | None = option_field(
        "--assets-dir",
        "models folder; the index is copied to <assets-dir>/indices (default: assets/ or $RVC_ASSETS_DIR)",
        None,
        type=Path,
        metavar="DIR",
        group="folders",
    )


@dataclass(frozen=True, kw_only=True)
class CheckRequest(StepRequest):
    """The dataset check after preprocessing: usable minutes, dropped pieces, clipping, broken pieces."""

    STEP: ClassVar[str] = "check"


@dataclass(frozen=True, kw_only=True)
class AllRequest(FitRequest, ExtractRequest, PreprocessRequest):
    """One-click training: preprocess, check, extract, fit (with the filelist), index, with these settings.

    ``processes`` serves preprocessing and pitch extraction, ``gpus`` and
    ``device`` extraction and training, as in RVC's Train tab.
    """

    STEP: ClassVar[str] = "all"

    def steps(self) -> list[StepRequest]:
        """The requests ``all`` runs, in order."""
        index = IndexRequest(name=self.name, logs_dir=self.logs_dir, version=self.version, assets_dir=self.assets_dir)
        return [
            self.part(PreprocessRequest),
            CheckRequest(name=self.name, logs_dir=self.logs_dir),
            self.part(ExtractRequest),
            self.part(FitRequest),
            index,
        ]


@dataclass(frozen=True, kw_only=True)
class ReuseRequest(ExperimentRequest):
    """Start experiment ``name`` from the pieces, pitch and features of experiment ``source``.

    Settings None take the source's.  Files are hard-linked where possible
    (``copy`` forces copies).  A new sample rate is refused: its pieces must be
    cut again from the recordings.
    """

    STEP: ClassVar[str] = "reuse"
    source: str = option_field("--from", "the experiment to take pieces, pitch and features from", metavar="NAME")
    name: str = option_field("--to", "the new experiment's name", metavar="NAME", aliases=("--name",))
    copy: bool = option_field(
        "--copy", "copy the files instead of hard-linking them", False, kind="switch", group="folders"
    )
    config_overrides: dict | None = _config_overrides()

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_name(self.source, "--from")
        if self.source == self.name:
            raise RequestError(f"--from and --to are both {self.name!r}; give the new experiment another name.")


REQUESTS: dict[str, type[StepRequest]] = {
    cls.STEP: cls
    for cls in (PreprocessRequest, CheckRequest, ExtractRequest, FitRequest, IndexRequest, AllRequest, ReuseRequest)
}
