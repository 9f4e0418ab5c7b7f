"""The training steps as library calls, each driven by its request from :mod:`train.commands`.

:func:`run_preprocess`, :func:`run_check`, :func:`run_extract` and
:func:`run_index` do what ``python -m train <step>`` does and return typed
outcomes; ``fit`` is in :mod:`train.fit_step`, ``all`` in :mod:`train.oneclick`,
``reuse`` in :mod:`train.reuse`.  The command line only parses flags and prints.

Only preprocessing (and reuse) sets an experiment up; the other steps need its
``config.json`` and refuse settings that contradict it.

Every step that writes into the experiment folder (preprocess, extract, fit,
index, all, reuse) holds the experiment's lock (:mod:`train.lock`) while it
runs (:func:`holds_experiment_lock`); a second one is refused with
:class:`~train.lock.ExperimentBusyError`.  ``check`` only reads and takes no lock.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from config import Settings
from infer.assets import asset_path
from infer.content import load_content_encoder
from infer.safe_load import ModelFileError
from train.commands import CheckRequest, ExperimentRequest, ExtractRequest, IndexRequest, PreprocessRequest, gpu_ids
from train.dataset_check import DatasetCheck, check_dataset
from train.experiment import ExperimentConfig, ExperimentError, ExperimentPaths, check_same_settings, open_experiment
from train.extract import HUBERT_DOWNLOAD, ExtractReport, extract_features, extract_pitch
from train.flags import quote_command
from train.index import IndexBuildCancelled, IndexBuildError, IndexReport, build_index
from train.lock import experiment_lock
from train.mute import ensure_mute
from train.preprocess import PreprocessError, PreprocessReport, preprocess_dataset
from train.resources import default_pitch_processes

Progress = Callable[[float, str], None]
Step = TypeVar("Step", bound=Callable[..., Any])
NEW_EXPERIMENT_DEFAULTS = ("v2", "40k", True)  # the Train tab's defaults (spec §9.4)


class DatasetCheckError(ValueError):
    """The preprocessed dataset has nothing to train on; the message holds the check's summary."""


@dataclass
class Callbacks:
    """Optional hooks: ``progress(fraction, message)`` for the current step, ``log(line)`` for detail
    lines, ``cancel() -> bool`` polled between units of work, ``say(text)`` for step headers and results."""

    progress: Progress | None = None
    log: Callable[[str], None] | None = None
    cancel: Callable[[], bool] | None = None
    say: Callable[[str], None] | None = None

    def cancelled(self) -> bool:
        return self.cancel is not None and bool(self.cancel())

    def note(self, line: str) -> None:
        if self.log is not None:
            self.log(line)

    def tell(self, text: str) -> None:
        if self.say is not None:
            self.say(text)

    def within(self, start: float, end: float, prefix: str = "") -> Callbacks:
        """The same hooks with progress mapped into ``start..end`` and messages prefixed."""
        if self.progress is None:
            return self

        def scaled(fraction: float, message: str) -> None:
            self.progress(start + (end - start) * min(max(fraction, 0.0), 1.0), prefix + message)

        return replace(self, progress=scaled)


@dataclass(frozen=True)
class Folders:
    """Where this run reads and writes: the request's folders, else the runtime settings' (``RVC_*_DIR``)."""

    logs_dir: Path
    weights_dir: Path
    assets_dir: Path
    device: str

    @classmethod
    def of(cls, request: Any) -> Folders:
        settings = Settings.from_env()

        def pick(name: str, default: Any) -> Any:
            value = getattr(request, name, None)
            return value if value is not None else default

        return cls(
            Path(pick("logs_dir", settings.logs_dir)),
            Path(pick("weights_dir", settings.weights_dir)),
            Path(pick("assets_dir", settings.assets_dir)),
            str(pick("device", settings.device)),
        )

    def experiment(self, name: str) -> ExperimentPaths:
        return ExperimentPaths(self.logs_dir.absolute() / name)

    def hubert(self, request: Any) -> Path:
        given = getattr(request, "hubert", None)
        return Path(given) if given is not None else asset_path("hubert_base", root=self.assets_dir)


def holds_experiment_lock(run: Step) -> Step:
    """Decorator for ``run(request, callbacks=None)``: the lock of ``request.name``'s folder is held while it runs.

    Nested locked steps in one thread (``all``) share the outer lock.
    """

    @functools.wraps(run)
    def locked(request: Any, callbacks: Callbacks | None = None) -> Any:
        callbacks = callbacks or Callbacks()
        root = Folders.of(request).experiment(request.name).root
        command = quote_command(request.argv(python="python"))
        with experiment_lock(root, command=command, log=callbacks.note):
            return run(request, callbacks)

    return locked  # type: ignore[return-value]


def _load_config(paths: ExperimentPaths) -> ExperimentConfig:
    if not paths.config.is_file():
        raise ExperimentError(
            f"Experiment '{paths.name}' does not exist in '{paths.root.parent}' (no config.json): run "
            f"`python -m train preprocess --name {paths.name} --dataset DIR` first, or check --logs-dir."
        )
    return ExperimentConfig.load(paths.config)


def experiment_config(request: ExperimentRequest, folders: Folders, *, create: bool) -> tuple[ExperimentConfig, bool]:
    """(config, is_new): the stored config (refusing contradicting settings), or a new one when ``create``.

    A new config is not saved here; save it with :func:`open_experiment` once the step has succeeded.
    """
    paths = folders.experiment(request.name)
    if paths.config.is_file() or not create:
        stored = _load_config(paths)
        check_same_settings(
            stored,
            request.version or stored.version,
            request.sample_rate or stored.tag,
            stored.use_f0 if request.use_f0 is None else request.use_f0,
        )
        return stored, False
    version, tag, use_f0 = NEW_EXPERIMENT_DEFAULTS
    overrides = getattr(request, "config_overrides", None) or {}
    try:
        config = ExperimentConfig.create(
            request.name,
            request.version or version,
            request.sample_rate or tag,
            use_f0 if request.use_f0 is None else request.use_f0,
            model_overrides=overrides.get("model"),
            train_overrides=overrides.get("train"),
        )
    except TypeError as exc:  # an unknown key in the overrides
        raise ExperimentError(f"--config-overrides does not fit the model preset: {exc}") from exc
    return config, True


@dataclass
class PreprocessOutcome:
    """What ``preprocess`` did: the report of the run and the dataset check after it."""

    report: PreprocessReport
    check: DatasetCheck
    config_created: bool

    @property
    def cancelled(self) -> bool:
        return self.report.cancelled

    def text(self) -> str:
        return f"{self.report.text()}\n{self.check.text()}"

    def to_json(self) -> dict:
        return asdict(self)


@holds_experiment_lock
def run_preprocess(request: PreprocessRequest, callbacks: Callbacks | None = None) -> PreprocessOutcome:
    """Step 1: pieces of every recording in ``request.dataset`` (spec §2), then the dataset check.

    A new experiment's config is written once preprocessing has written pieces; an existing
    experiment with other settings is refused before anything is touched.
    Raises :class:`PreprocessError` when the dataset gives no usable piece at all.
    """
    callbacks = callbacks or Callbacks()
    dataset = Path(request.dataset)
    if not dataset.is_dir():
        raise PreprocessError(f"Dataset folder '{dataset}' does not exist or is not a folder; check the path.")
    folders = Folders.of(request)
    config, is_new = experiment_config(request, folders, create=True)
    paths = folders.experiment(request.name)
    report = preprocess_dataset(
        dataset,
        paths.root,
        config.sample_rate,
        workers=request.processes,
        progress=callbacks.progress,
        cancel=callbacks.cancel,
        log=callbacks.log,
    )
    if is_new and report.pieces:
        open_experiment(folders.logs_dir.absolute(), config)
    outcome = PreprocessOutcome(report, check_dataset(paths.root, config.sample_rate, report), is_new)
    if report.pieces == 0 and not report.cancelled:
        raise PreprocessError(f"No usable audio in '{dataset}': {outcome.text()}")
    return outcome


def run_check(request: CheckRequest, callbacks: Callbacks | None = None) -> DatasetCheck:
    """The dataset check of an experiment's pieces; raises :class:`DatasetCheckError` when none is usable."""
    paths = Folders.of(request).experiment(request.name)
    check = check_dataset(paths.root, _load_config(paths).sample_rate)
    if not check.trainable:
        raise DatasetCheckError(f"Nothing to train on in '{paths.root}': {check.text()}")
    return check


@dataclass
class ExtractOutcome:
    """Reports of ``extract``: pitch (None without pitch guidance) and features."""

    pitch: ExtractReport | None
    features: ExtractReport | None
    cancelled: bool = False

    def text(self) -> str:
        parts = [report.text() for report in (self.pitch, self.features) if report is not None]
        return "\n".join(parts + (["Cancelled: run extract again to resume."] if self.cancelled else []))

    def to_json(self) -> dict:
        return asdict(self)


def extraction_devices(request: ExtractRequest, folders: Folders) -> list[str]:
    """One device per network worker: ``cuda:N`` for each id of ``--gpus``, else the one ``--device``."""
    ids = gpu_ids(request.gpus)
    return [f"cuda:{i}" for i in ids] if ids else [folders.device]


@holds_experiment_lock
def run_extract(request: ExtractRequest, callbacks: Callbacks | None = None) -> ExtractOutcome:
    """Step 2: pitch (with pitch guidance) and content features for every piece; resumable (spec §3, §4).

    The content encoder must give the width the experiment's model expects; the
    silent sample ``<logs>/mute`` gets its features from it too.
    """
    callbacks = callbacks or Callbacks()
    folders = Folders.of(request)
    config, _ = experiment_config(request, folders, create=False)
    paths = folders.experiment(request.name)
    hubert = folders.hubert(request)
    if not hubert.exists():
        raise ModelFileError(
            f"Content encoder not found at '{hubert}'. Download it with `{HUBERT_DOWNLOAD}`, or pass --hubert."
        )
    encoder = load_content_encoder(hubert)
    width = encoder.feature_dim(config.version)
    if width != config.model.feature_dim:
        raise ExperimentError(
            f"The content encoder '{hubert}' gives {width}-d features for {config.version}, but experiment "
            f"'{config.name}' trains a model for {config.model.feature_dim}-d ones: use the encoder the experiment "
            "was set up for, or a new experiment."
        )
    ensure_mute(folders.logs_dir, config.sample_rate, config.version, encoder)
    del encoder
    devices = extraction_devices(request, folders)
    pitch = None
    if config.use_f0:
        method = "rmvpe" if request.f0_method == "rmvpe_gpu" else request.f0_method
        rmvpe = request.rmvpe if request.rmvpe is not None else asset_path("rmvpe", root=folders.assets_dir)
        pitch = extract_pitch(
            paths.root,
            method,
            workers=request.processes or default_pitch_processes(),
            devices=devices,
            rmvpe_path=rmvpe,
            progress=callbacks.within(0.0, 0.5).progress,
            cancel=callbacks.cancel,
            log=callbacks.log,
        )
        if config.f0_method != method:
            replace(config, f0_method=method).save(paths.config)  # the voice's metadata names it
        if pitch.cancelled:
            return ExtractOutcome(pitch, None, cancelled=True)
    start = 0.5 if config.use_f0 else 0.0
    features = extract_features(
        paths.root,
        config.version,
        hubert,
        devices=devices,
        progress=callbacks.within(start, 1.0).progress,
        cancel=callbacks.cancel,
        log=callbacks.log,
    )
    return ExtractOutcome(pitch, features, cancelled=features.cancelled)


@dataclass
class IndexOutcome:
    """The index built by ``index`` (None when cancelled)."""

    report: IndexReport | None
    cancelled: bool = False

    def text(self) -> str:
        return self.report.text() if self.report is not None else "Cancelled: no index was written."

    def to_json(self) -> dict:
        return asdict(self)


@holds_experiment_lock
def run_index(request: IndexRequest, callbacks: Callbacks | None = None) -> IndexOutcome:
    """Step 4: the FAISS index in the experiment folder and a copy in ``<assets>/indices`` (spec §7.1).

    Raises :class:`IndexBuildError` when no index can be built or it does not read back.
    """
    callbacks = callbacks or Callbacks()
    folders = Folders.of(request)
    paths = folders.experiment(request.name)
    config = _load_config(paths)
    if request.version is not None:
        check_same_settings(config, request.version, config.sample_rate, config.use_f0)
    try:
        report = build_index(
            paths.root,
            config.version,
            outside_dir=folders.assets_dir / "indices",
            progress=callbacks.progress,
            cancel=callbacks.cancel,
            log=callbacks.log,
        )
    except IndexBuildCancelled:
        return IndexOutcome(None, cancelled=True)
    if not report.added.is_file():  # build_index reads it back; this guards against anything removing it
        raise IndexBuildError(f"The index '{report.added}' was not written; build it again.")
    return IndexOutcome(report)
