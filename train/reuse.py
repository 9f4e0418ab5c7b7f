"""Start a new experiment from an existing one's pieces, pitch and features (``python -m train reuse``).

An experiment's settings are frozen at its first run, so changing the version
or the pitch setting needs a new experiment (FAQ Q18).  What the new settings
allow is taken over instead of computed again:

* ``0_gt_wavs`` and ``1_16k_wavs`` (and the preprocessing report) when the
  sample rate is the same; another rate is refused, as the pieces at the model
  rate must be cut again from the recordings;
* ``2a_f0`` / ``2b-f0nsf`` when the new experiment uses pitch (they do not
  depend on rate or version);
* ``3_feature256|768`` of the new experiment's version, when their width fits.

Files are hard-linked where possible (every writer in this project replaces
files instead of changing them, so the experiments cannot affect each other),
else copied.  The folders are assembled under a temporary name and moved into
place one by one, and the config is written last: an interrupted reuse leaves
no half-filled folder.  To continue from the old experiment's training too
(FAQ Q15), pass its G/D to ``fit`` as ``--pretrained-g``/``--pretrained-d``;
the outcome names them.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from infer.models.config import sample_rate_from_tag
from train.checkpointing import find_latest_pair
from train.commands import ExtractRequest, FitRequest, IndexRequest, PreprocessRequest, ReuseRequest
from train.experiment import ExperimentConfig, ExperimentError, ExperimentPaths, open_experiment
from train.preprocess import PreprocessReport
from train.steps import Callbacks, Folders, holds_experiment_lock

_TEMP_NAME = ".reuse-in-progress"
_SKIPPED_SUFFIXES = (".spec.pt", ".tmp")  # spectrogram caches are rebuilt; temporary files are not data


@dataclass
class ReuseOutcome:
    """What ``reuse`` took over.  ``files`` counts files per folder, ``linked`` how many were hard links;
    ``skipped`` says what was not taken and why; ``next_commands`` finish the new experiment."""

    source: str
    target: str
    files: dict[str, int] = field(default_factory=dict)
    linked: int = 0
    skipped: list[str] = field(default_factory=list)
    next_commands: list[str] = field(default_factory=list)
    continue_from: tuple[str, str] | None = None
    cancelled: bool = False

    def text(self) -> str:
        total = sum(self.files.values())
        lines = [
            f"Experiment '{self.target}' starts from '{self.source}': {total} files "
            f"({self.linked} hard-linked) in {', '.join(f'{k} ({v})' for k, v in self.files.items())}."
        ]
        lines += [f"Not taken over: {reason}" for reason in self.skipped]
        lines.append("Next:")
        lines += [f"$ {command}" for command in self.next_commands]
        if self.continue_from is not None:
            lines.append(
                f"(to continue from '{self.source}''s training, the fit command passes its G/D as pretrained "
                "files; leave them out to start from the usual pretrained model)"
            )
        return "\n".join(lines)

    def to_json(self) -> dict:
        return asdict(self)


def _width(folder: Path) -> int | None:
    for path in sorted(folder.glob("*.npy")):
        try:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        except (OSError, ValueError):
            continue
        return int(shape[1]) if len(shape) == 2 else None
    return None


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() for p in folder.iterdir())


def _bring(source: Path, target: Path, copy: bool) -> tuple[int, int]:
    """Hard-link (or copy) the data files of folder ``source`` into the new folder ``target``; (files, linked)."""
    target.mkdir(parents=True)
    files = linked = 0
    for path in sorted(source.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.name.endswith(_SKIPPED_SUFFIXES):
            continue
        files += 1
        if not copy:
            try:
                os.link(path, target / path.name)
                linked += 1
                continue
            except OSError:
                pass  # another filesystem, or links not allowed: copy
        shutil.copy2(path, target / path.name)
    return files, linked


def _model_widths(old: ExperimentConfig, *, same_version: bool) -> dict:
    """The source model's widths, so that the new experiment trains the same kind of model (its own
    version's feature width when the version changes; upsampling always from the preset)."""
    keep = [
        "inter_channels",
        "hidden_channels",
        "filter_channels",
        "n_heads",
        "n_layers",
        "kernel_size",
        "p_dropout",
        "upsample_initial_channel",
        "gin_channels",
        "spk_embed_dim",
    ]
    values = old.model.to_dict()
    return {key: values[key] for key in keep + ["feature_dim"] * same_version if key in values}


def target_config(request: ReuseRequest, old: ExperimentConfig) -> ExperimentConfig:
    """The new experiment's config: ``request.config_overrides`` on the preset if given, else the source's
    model widths (and, for the same version, its training section)."""
    version = request.version or old.version
    use_f0 = old.use_f0 if request.use_f0 is None else request.use_f0
    if request.config_overrides is not None:
        model, train = request.config_overrides.get("model"), request.config_overrides.get("train")
    else:
        model = _model_widths(old, same_version=version == old.version)
        train = asdict(old.train) if version == old.version else None
        if train is not None:
            train["betas"] = tuple(train["betas"])
    try:
        return ExperimentConfig.create(
            request.name,
            version,
            old.sample_rate,
            use_f0,
            model_overrides=model,
            train_overrides=train,
            f0_method=old.f0_method,
            content_encoder=old.content_encoder,
        )
    except TypeError as exc:
        raise ExperimentError(f"--config-overrides does not fit the model preset: {exc}") from exc


def _check_request(request: ReuseRequest, source: ExperimentPaths, target: ExperimentPaths) -> ExperimentConfig:
    """The source's config, after refusing what cannot be reused (clear messages, nothing touched)."""
    if not source.config.is_file():
        raise ExperimentError(
            f"Experiment '{source.name}' does not exist in '{source.root.parent}' (no config.json); "
            "check --from and --logs-dir."
        )
    old = ExperimentConfig.load(source.config)
    if request.sample_rate is not None and sample_rate_from_tag(request.sample_rate) != old.sample_rate:
        report = PreprocessReport.load(source.preprocess_report) if source.preprocess_report.is_file() else None
        dataset = report.dataset_dir if report is not None and report.dataset_dir else "DIR"
        command = PreprocessRequest(
            name=request.name,
            logs_dir=request.logs_dir,
            sample_rate=request.sample_rate,
            version=request.version,
            use_f0=request.use_f0,
            dataset=Path(dataset),
        )
        raise ExperimentError(
            f"'{source.name}' was preprocessed at {old.tag}; a {request.sample_rate} model needs pieces cut at "
            f"{request.sample_rate} from the recordings. Preprocess them into the new experiment instead: "
            f"`{command.command_line()}`"
        )
    if not (_has_files(source.gt_wavs) and _has_files(source.wavs16k)):
        raise ExperimentError(
            f"'{source.root}' has no preprocessed pieces to reuse: run `python -m train preprocess "
            f"--name {source.name} --dataset DIR` first."
        )
    taken = [
        folder.name for folder in (target.gt_wavs, target.wavs16k, target.f0_coarse, target.f0_hz) if _has_files(folder)
    ] + [p.name for p in target.root.glob("3_feature*") if _has_files(p)]
    if target.config.exists() or taken:
        raise ExperimentError(
            f"Experiment '{target.name}' already exists in '{target.root.parent}'; choose a new "
            "name for --to, or delete its folder first."
        )
    return old


def _plan(source: ExperimentPaths, old: ExperimentConfig, new: ExperimentConfig) -> tuple[list[Path], list[str]]:
    """(folders to take over, what is not taken and why)."""
    folders, skipped = [source.gt_wavs, source.wavs16k], []
    if new.use_f0 and _has_files(source.f0_coarse) and _has_files(source.f0_hz):
        folders += [source.f0_coarse, source.f0_hz]
    elif new.use_f0:
        skipped.append(f"pitch: '{source.name}' has none (it was set up without pitch guidance); extract it.")
    elif old.use_f0:
        skipped.append("pitch: not used without pitch guidance.")
    features = source.features(new.version)
    width = _width(features) if _has_files(features) else None
    if width is None:
        skipped.append(f"features: '{source.name}' has no {features.name} ({new.version}); extract them.")
    elif width != new.model.feature_dim:
        skipped.append(
            f"features: {features.name} holds {width}-d features but the new model needs "
            f"{new.model.feature_dim}-d ones; extract them again."
        )
    else:
        folders.append(features)
    return folders, skipped


@holds_experiment_lock
def run_reuse(request: ReuseRequest, callbacks: Callbacks | None = None) -> ReuseOutcome:
    """Set experiment ``request.name`` up from experiment ``request.source`` (see the module docstring).

    The new experiment's folder is locked meanwhile (:mod:`train.lock`); the source is only read.
    """
    callbacks = callbacks or Callbacks()
    folders = Folders.of(request)
    source, target = folders.experiment(request.source), folders.experiment(request.name)
    old = _check_request(request, source, target)
    new = target_config(request, old)
    plan, skipped = _plan(source, old, new)
    outcome = ReuseOutcome(request.source, request.name, skipped=skipped)
    temp = target.root / _TEMP_NAME
    shutil.rmtree(temp, ignore_errors=True)  # left by an interrupted reuse
    try:
        for number, folder in enumerate(plan):
            if callbacks.cancelled():
                outcome.cancelled = True
                return outcome
            files, linked = _bring(folder, temp / folder.name, request.copy)
            outcome.files[folder.name] = files
            outcome.linked += linked
            callbacks.note(f"{folder.name}: {files} files ({linked} hard-linked)")
            if callbacks.progress is not None:
                callbacks.progress((number + 1) / len(plan), f"{folder.name}: {files} files")
        if source.preprocess_report.is_file():
            shutil.copy2(source.preprocess_report, temp / source.preprocess_report.name)
        for item in sorted(temp.iterdir()):
            destination = target.root / item.name
            if destination.is_dir():
                destination.rmdir()  # empty (checked above)
            os.replace(item, destination)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    open_experiment(folders.logs_dir.absolute(), new)
    outcome.next_commands, outcome.continue_from = _next_steps(request, source, old, new, plan)
    return outcome


def _next_steps(
    request: ReuseRequest, source: ExperimentPaths, old: ExperimentConfig, new: ExperimentConfig, plan: list[Path]
) -> tuple[list[str], tuple[str, str] | None]:
    common = {"name": request.name, "logs_dir": request.logs_dir}
    commands = []
    needed = [source.features(new.version)] + ([source.f0_coarse] if new.use_f0 else [])
    if any(folder not in plan for folder in needed):
        commands.append(ExtractRequest(**common).command_line())
    pair = find_latest_pair(source.root) if new.model == old.model and new.use_f0 == old.use_f0 else None
    continue_from = (str(pair.generator), str(pair.discriminator)) if pair is not None else None
    fit = FitRequest(
        **common,
        pretrained_g=continue_from[0] if continue_from else None,
        pretrained_d=continue_from[1] if continue_from else None,
    )
    commands += [fit.command_line(), IndexRequest(**common).command_line()]
    return commands, continue_from
