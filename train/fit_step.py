"""Step 3 as a library call: the filelist, then training in this process or several under torchrun.

:func:`run_fit` does what ``python -m train fit`` does: it writes
``filelist.txt`` (with the silent sample) like RVC's "Train model" button,
picks the pretrained G/D, and calls :func:`train.loop.fit`, or launches
``torchrun`` (:mod:`train.launch`) when several processes are asked for.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from infer.assets import asset_path, pretrained_paths
from train.commands import FitRequest
from train.experiment import ExperimentConfig, ExperimentError
from train.filelist import write_filelist
from train.fit_main import result_summary
from train.flags import gpu_ids, quote_command
from train.launch import run_torchrun, torchrun_argv
from train.loop import FitOptions, fit
from train.mute import MuteSample, ensure_mute
from train.steps import Callbacks, Folders, experiment_config, holds_experiment_lock

NO_PRETRAINED = ("", "none")
PRETRAINED_DOWNLOAD = "python tools/download_models.py --only {}"


@dataclass
class FitOutcome:
    """What ``fit`` did.  ``samples`` counts the filelist's lines (the two silent ones included);
    ``left_out`` names pieces missing a file; ``result`` is :func:`train.fit_main.result_summary`'s dict."""

    samples: int
    left_out: list[str]
    processes: int
    pretrained: tuple[str | None, str | None]
    result: dict = field(default_factory=dict)

    @property
    def cancelled(self) -> bool:
        return bool(self.result.get("stopped"))

    @property
    def final_model(self) -> Path | None:
        path = self.result.get("final_model")
        return Path(path) if path else None

    def text(self) -> str:
        result = self.result
        state = f"stopped ({result.get('stop_reason')})" if result.get("stopped") else "finished"
        lines = [
            f"Training {state} at epoch {result.get('epoch')}, step {result.get('global_step')} "
            f"({self.samples} filelist entries, {self.processes} process(es))."
        ]
        if self.left_out:
            lines.append(f"{len(self.left_out)} piece(s) left out of the filelist: {'; '.join(self.left_out[:5])}")
        if self.final_model is not None:
            lines.append(f"Voice model: {self.final_model}")
        elif result.get("stopped"):
            lines.append("No voice model yet: run the same command again to continue from the last checkpoint.")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return asdict(self)


def pretrained_files(
    request: FitRequest, config: ExperimentConfig, folders: Folders, callbacks: Callbacks
) -> tuple[str | None, str | None]:
    """The pretrained (G, D) to start from: the request's, "" / "none" for none, None for RVC's files if present."""
    chosen = []
    for given, asset in zip(
        (request.pretrained_g, request.pretrained_d),
        pretrained_paths(config.version, config.sample_rate, config.use_f0),
    ):
        if given is not None:
            chosen.append(None if given.strip().lower() in NO_PRETRAINED else given)
            continue
        default = asset_path(asset, root=folders.assets_dir)
        if default.is_file():
            chosen.append(str(default))
        else:
            chosen.append(None)
            callbacks.note(
                f"warning: no pretrained file at '{default}'; training from scratch (download it with "
                f"`{PRETRAINED_DOWNLOAD.format(asset.key)}`, or pass --pretrained-g/-d '')."
            )
    return chosen[0], chosen[1]


def _mute(request: FitRequest, config: ExperimentConfig, folders: Folders) -> MuteSample:
    hubert = folders.hubert(request)
    try:
        return ensure_mute(folders.logs_dir, config.sample_rate, config.version, hubert if hubert.exists() else None)
    except ValueError as exc:
        raise ExperimentError(f"{exc} Run `python -m train extract` first (it makes them), or pass --hubert.") from exc


def fit_options(request: FitRequest, folders: Folders, pretrained: tuple[str | None, str | None]) -> FitOptions:
    """:class:`FitOptions` for the request; with ``--gpus`` the device is CUDA (one GPU: that one)."""
    ids = gpu_ids(request.gpus)
    device = folders.device
    if ids:
        device = f"cuda:{ids[0]}" if request.processes_to_launch == 1 else "cuda"
    return FitOptions(
        total_epochs=request.epochs,
        save_every=request.save_every,
        save_latest_only=request.latest_only,
        save_small_model_every_save=request.save_small_models,
        pretrained_g=pretrained[0],
        pretrained_d=pretrained[1],
        batch_size=request.batch_size,
        device=device,
        precision=request.precision,
        num_workers=request.num_workers,
        log_interval=request.log_interval,
        weights_dir=folders.weights_dir,
        seed=request.seed,
        threads=request.threads,
        discriminator_divisors=request.disc_divisors,
    )


@holds_experiment_lock
def run_fit(request: FitRequest, callbacks: Callbacks | None = None) -> FitOutcome:
    """Write the filelist and train the experiment to ``request.epochs`` (resuming its latest checkpoint).

    Several processes (``--gpus`` with several ids, or ``--nproc``) run under
    torchrun as a child process; one runs here.  ``callbacks.cancel()`` (and in
    one process also SIGINT/SIGTERM or the stop file) ends training with a checkpoint.
    """
    callbacks = callbacks or Callbacks()
    folders = Folders.of(request)
    config, _ = experiment_config(request, folders, create=False)
    paths = folders.experiment(request.name)
    if request.speaker_id >= config.model.spk_embed_dim:
        raise ExperimentError(
            f"--speaker-id {request.speaker_id} does not exist: experiment '{config.name}' has "
            f"{config.model.spk_embed_dim} speaker slots (ids 0 to {config.model.spk_embed_dim - 1})."
        )
    mute = _mute(request, config, folders)
    samples, left_out = write_filelist(paths.root, config.version, config.use_f0, request.speaker_id, mute)
    for line in left_out:
        callbacks.note(f"left out of the filelist: {line}")
    pretrained = pretrained_files(request, config, folders, callbacks)
    options = fit_options(request, folders, pretrained)
    processes = request.processes_to_launch
    if processes == 1:
        result = result_summary(fit(paths.root, options, progress=callbacks.progress, cancel=callbacks.cancel))
    else:
        env = dict(os.environ)
        ids = gpu_ids(request.gpus)
        if ids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in ids)
        argv = torchrun_argv(paths.root, options, processes)
        callbacks.note(f"starting {processes} training processes: {quote_command(argv)}")
        result = run_torchrun(
            argv,
            stop_file=paths.stop_file,
            env=env,
            progress=callbacks.progress,
            log=callbacks.log,
            cancel=callbacks.cancel,
        )
    return FitOutcome(samples, left_out, processes, pretrained, result)
