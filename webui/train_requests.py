"""From the Train tab's widget values to typed step requests and job steps (no Gradio here).

Every button of the tab becomes one or more :mod:`train.commands` requests;
each request gives the argument list the job runner starts (no shell) and
the command line shown to the user, which runs the same step from a terminal.
The experiment name must be a plain folder name, and the typed dataset and
pretrained G/D paths must lie in folders the server reads
(:class:`webui.paths.PathPolicy`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from config import Settings
from train.checkpointing import find_latest_pair
from train.commands import (
    AllRequest,
    CheckRequest,
    ExtractRequest,
    FitRequest,
    IndexRequest,
    PreprocessRequest,
    RequestError,
    StepRequest,
)
from train.experiment import ExperimentConfig, ExperimentError, ExperimentPaths
from webui.jobs import JobStep
from webui.paths import PathPolicy, file_name

R = TypeVar("R", bound=StepRequest)
_QUOTES_AND_SPACE = " \t\r\n\"'\u202a\u202b\u202c\u202d\u202e"  # pasted paths often carry quotes or bidi marks


def clean_path(text: str | None) -> str:
    """A path typed or pasted into a text box, without surrounding spaces, quotes or bidi control characters."""
    return (text or "").strip(_QUOTES_AND_SPACE)


@dataclass(frozen=True)
class TrainForm:
    """The Train tab's widget values, as the handlers receive them.

    ``gpus`` is RVC's "0-1" list ("" for none); ``device`` "auto" follows the
    server's setting; ``config_overrides`` is JSON text applied when the
    experiment is created; ``disc_divisors`` "SCALE PERIOD" narrows the
    discriminator ("" for the full one); both exist for tiny test models.
    """

    name: str
    sample_rate: str = "40k"
    use_f0: bool = True
    version: str = "v2"
    processes: int = 1
    dataset: str = ""
    speaker_id: int = 0
    f0_method: str = "rmvpe"
    gpus: str = ""
    save_every: int = 5
    epochs: int = 20
    batch_size: int = 4
    latest_only: bool = False
    save_small_models: bool = False
    pretrained_g: str = ""
    pretrained_d: str = ""
    device: str = "auto"
    precision: str = "auto"
    num_workers: int = 2
    config_overrides: str = ""
    disc_divisors: str = ""

    @classmethod
    def from_values(cls, *values: Any) -> TrainForm:
        """Positional widget values in field order (how Gradio passes its inputs)."""
        names = [f.name for f in fields(cls)]
        if len(values) != len(names):
            raise ValueError(f"expected {len(names)} values, got {len(values)}")
        return cls(**dict(zip(names, values)))

    @property
    def experiment_name(self) -> str:
        return (self.name or "").strip()


def _make(cls: type[R], **values: Any) -> R:
    """``cls(**values)`` with the values it has fields for (the experiment settings go to every step; only
    the steps that create an experiment take ``config_overrides``)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def _folders(settings: Settings, *wanted: str) -> dict[str, Path]:
    """The settings' folders that differ from what the command finds by itself (the server's environment)."""
    defaults = Settings.from_env()
    return {name: getattr(settings, name) for name in wanted if getattr(settings, name) != getattr(defaults, name)}


def checked_experiment_name(form: TrainForm) -> str:
    """The form's experiment name when it is one plain folder name; raises ``RequestError`` naming the rule."""
    name = form.experiment_name
    if not name:
        raise RequestError("Enter an experiment name.")
    CheckRequest(name=name)  # the CLI's rule: a plain folder name (no '/', '..'), not a reserved one
    try:
        file_name(name, "Experiment name")  # and one every file system takes (no ':', '*', leading '.' ...)
    except ValueError as exc:
        raise RequestError(str(exc)) from exc
    return name


def _pretrained(settings: Settings, text: str, what: str) -> str:
    """A typed pretrained G/D path, checked to be readable; "" and "none" (train from scratch) stay as they are."""
    cleaned = clean_path(text)
    if cleaned.lower() in ("", "none"):
        return cleaned
    return str(PathPolicy(settings).readable(cleaned, what))


def _experiment_fields(form: TrainForm) -> dict[str, Any]:
    overrides = None
    if form.config_overrides.strip():
        try:
            overrides = json.loads(form.config_overrides)
        except ValueError as exc:
            raise RequestError(f"The config overrides are not valid JSON: {exc}") from exc
    return dict(
        name=checked_experiment_name(form),
        sample_rate=form.sample_rate,
        version=form.version,
        use_f0=bool(form.use_f0),
        config_overrides=overrides,
    )


def _device(form: TrainForm, settings: Settings) -> str | None:
    device = form.device if form.device and form.device != "auto" else settings.device
    return None if device in (None, "", "auto") else device


def _disc_divisors(text: str) -> tuple[int, int]:
    parts = text.replace(",", " ").split()
    if not parts:
        return (1, 1)
    try:
        scale, period = (int(p) for p in parts)
    except ValueError as exc:
        raise RequestError(
            f"The discriminator divisors must be two whole numbers (SCALE PERIOD), got {text!r}."
        ) from exc
    return scale, period


def preprocess_request(form: TrainForm, settings: Settings) -> PreprocessRequest:
    dataset = clean_path(form.dataset)
    if not dataset:
        raise RequestError("Enter the folder of recordings to train on (step 1).")
    return _make(
        PreprocessRequest,
        **_experiment_fields(form),
        **_folders(settings, "logs_dir"),
        dataset=PathPolicy(settings).readable(dataset, "Training folder"),
        processes=int(form.processes) or None,
    )


def extract_request(form: TrainForm, settings: Settings) -> ExtractRequest:
    gpus = form.gpus.strip() or None
    method = form.f0_method
    if method == "rmvpe_gpu" and not gpus:
        method = "rmvpe"  # RVC's GPU RMVPE without GPUs listed: plain RMVPE on the chosen device
    return _make(
        ExtractRequest,
        **_experiment_fields(form),
        **_folders(settings, "logs_dir", "assets_dir"),
        f0_method=method,
        processes=int(form.processes) or None,
        gpus=gpus,
        device=None if gpus else _device(form, settings),
    )


def fit_request(form: TrainForm, settings: Settings) -> FitRequest:
    return _make(
        FitRequest,
        **_experiment_fields(form),
        **_folders(settings, "logs_dir", "assets_dir", "weights_dir"),
        speaker_id=int(form.speaker_id),
        epochs=int(form.epochs),
        save_every=int(form.save_every),
        batch_size=int(form.batch_size),
        latest_only=bool(form.latest_only),
        save_small_models=bool(form.save_small_models),
        pretrained_g=_pretrained(settings, form.pretrained_g, "Pretrained G"),
        pretrained_d=_pretrained(settings, form.pretrained_d, "Pretrained D"),
        gpus=form.gpus.strip() or None,
        device=None if form.gpus.strip() else _device(form, settings),
        precision=form.precision or "auto",
        num_workers=int(form.num_workers),
        disc_divisors=_disc_divisors(form.disc_divisors),
    )


def index_request(form: TrainForm, settings: Settings) -> IndexRequest:
    return _make(
        IndexRequest,
        name=checked_experiment_name(form),
        **_folders(settings, "logs_dir", "assets_dir"),
        version=form.version,
    )


def one_click_requests(form: TrainForm, settings: Settings) -> list[StepRequest]:
    """RVC's one-click training: preprocess, check, extract, train, index, with the form's settings."""
    preprocess, extract, fit = (
        preprocess_request(form, settings),
        extract_request(form, settings),
        fit_request(form, settings),
    )
    merged = {**vars(preprocess), **vars(extract), **vars(fit)}
    return _make(AllRequest, **merged).steps()


def job_steps(requests: list[StepRequest]) -> list[JobStep]:
    """Job steps labelled by step name (``preprocess``, ``fit``...), run with ``--json-progress``."""
    return [JobStep(r.STEP, tuple(r.argv(json_progress=True)), r.command_line()) for r in requests]


def experiment_paths(form: TrainForm, settings: Settings) -> ExperimentPaths:
    """The experiment's folders under the logs folder; raises ``RequestError`` for a name that is not one folder."""
    return ExperimentPaths(settings.logs_dir / checked_experiment_name(form))


def resume_point(paths: ExperimentPaths, epochs: int) -> int:
    """The epoch a resumed training continues after; raises ``ExperimentError`` when there is nothing to resume.

    Needs a readable G_/D_ pair in the experiment and a total epoch count above it.
    """
    pair = find_latest_pair(paths.root)
    if pair is None:
        raise ExperimentError(
            f"'{paths.root}' holds no G_*.pth/D_*.pth checkpoint to resume from; use 'Train model' to start a training."
        )
    if epochs <= pair.epoch:
        raise ExperimentError(
            f"The checkpoint {pair.generator.name} is already at epoch {pair.epoch}; set the "
            f"total epochs above {pair.epoch} to train on."
        )
    return pair.epoch


def stored_settings(paths: ExperimentPaths) -> ExperimentConfig | None:
    """The experiment's frozen config, or None for a new (or unreadable) experiment."""
    if not paths.config.is_file():
        return None
    try:
        return ExperimentConfig.load(paths.config)
    except ExperimentError:
        return None
