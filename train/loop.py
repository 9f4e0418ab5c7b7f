"""``fit``: train an experiment's voice (spec §6), in one process or several under torchrun.

A plain loop over epochs and batches.  Step functions live in
:mod:`train.step`, checkpoints in :mod:`train.checkpointing`, processes and
stop requests in :mod:`train.distributed`, logs in :mod:`train.fit_log`.  Rank 0
alone logs and saves: ``train.log`` in RVC's format, ``metrics.jsonl`` for
plotting, TensorBoard.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from infer.models.discriminators import build_discriminator
from infer.models.synthesizer import Synthesizer
from train.checkpointing import (
    RESUME_KEY,
    CheckpointPair,
    export_voice,
    f0_statistics,
    find_latest_pair,
    load_for_resume,
    load_pretrained,
    make_scheduler,
    save_pair,
)
from train.data import BucketSampler, TrainingDataset, bucket_boundaries, collate
from train.distributed import (
    DistContext,
    StopRequest,
    any_rank,
    barrier,
    ignore_sigint_in_worker,
    init_distributed,
    shutdown,
    wrap,
)
from train.experiment import ExperimentConfig, ExperimentError, ExperimentPaths
from train.filelist import read_filelist
from train.fit_log import TrainLog, rvc_hparams
from train.step import Losses, StepSettings, TrainState, make_optimizer, resolve_precision, train_step

Progress = Callable[[float, str], None]
METRIC_KEYS = ("loss/g/total", "loss/d/total", "loss/g/mel", "loss/g/kl", "loss/g/fm", "grad_norm_g", "grad_norm_d")


@dataclass
class FitOptions:
    """How to run training; the model itself comes from the experiment's ``config.json``.

    ``batch_size``, ``log_interval`` and ``seed`` None take the config's values;
    ``weights_dir`` None is the runtime settings' ``weights/``; ``threads`` sets
    torch's CPU threads for the run (None: unchanged).
    ``discriminator_divisors`` (scale, period) narrow the discriminator (tests).
    """

    total_epochs: int = 20
    save_every: int = 5
    save_latest_only: bool = False
    save_small_model_every_save: bool = False
    pretrained_g: str | Path | None = None
    pretrained_d: str | Path | None = None
    batch_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    num_workers: int = 2
    log_interval: int | None = None
    weights_dir: str | Path | None = None
    seed: int | None = None
    threads: int | None = None
    discriminator_divisors: tuple[int, int] = (1, 1)

    def __post_init__(self) -> None:
        for name in ("total_epochs", "save_every", "batch_size", "log_interval", "threads"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")


@dataclass
class FitResult:
    """What :func:`fit` did; ``epoch`` is the last epoch trained (stored in the last checkpoint)."""

    start_epoch: int
    epoch: int
    global_step: int
    stopped: bool = False
    stop_reason: str | None = None
    checkpoints: list[CheckpointPair] = field(default_factory=list)
    small_models: list[Path] = field(default_factory=list)
    final_model: Path | None = None
    dropped_samples: int = 0


@dataclass
class _Run:
    paths: ExperimentPaths
    config: ExperimentConfig
    options: FitOptions
    ctx: DistContext
    log: TrainLog
    state: TrainState
    settings: StepSettings
    loader: DataLoader
    weights_dir: Path
    f0_files: list[Path]
    result: FitResult
    log_interval: int
    last_saved_step: int = -1


def fit(
    exp_dir: str | Path,
    options: FitOptions | None = None,
    *,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> FitResult:
    """Train the experiment in ``exp_dir`` (``logs/<name>``) up to ``options.total_epochs``.

    Resumes from the latest G_/D_ pair (at its epoch + 1), else starts from the
    pretrained G/D if given.  ``progress(fraction, message)`` is called after
    every step on rank 0; ``cancel()``, SIGINT/SIGTERM or the experiment's
    ``STOP`` file end training cleanly with a checkpoint.  At the end the voice
    model ``<weights_dir>/<name>.pth`` is written.
    """
    options = options or FitOptions()
    paths = ExperimentPaths(Path(exp_dir).absolute())
    if not paths.config.is_file() or not paths.filelist.is_file():
        raise ExperimentError(
            f"'{paths.root}' has no config.json or filelist.txt; run preprocessing and "
            "pitch/feature extraction (which writes the filelist) first."
        )
    config = ExperimentConfig.load(paths.config)
    threads = torch.get_num_threads()
    if options.threads:
        torch.set_num_threads(options.threads)
    ctx = init_distributed(options.device)
    finished = False
    try:
        with StopRequest(paths.stop_file, cancel) as stop:
            run = _start(paths, config, options, ctx)
            try:
                result = _train(run, stop, progress)
            finally:
                run.log.close()
        finished = True
        return result
    finally:
        shutdown(ctx, wait=finished)
        torch.set_num_threads(threads)


def _start(paths: ExperimentPaths, config: ExperimentConfig, options: FitOptions, ctx: DistContext) -> _Run:
    if ctx.is_main:
        paths.stop_file.unlink(missing_ok=True)  # a stop file left from an earlier stop must not end this run
        for stale in [*paths.root.glob(".G_*.tmp"), *paths.root.glob(".D_*.tmp")]:
            stale.unlink(missing_ok=True)  # temporary files of a save that was killed
    barrier(ctx)
    batch_size = options.batch_size or config.train.batch_size
    entries = read_filelist(paths.filelist)
    dataset = TrainingDataset(
        entries,
        config.data,
        use_f0=config.use_f0,
        feature_dim=config.model.feature_dim,
        spk_embed_dim=config.model.spk_embed_dim,
    )
    sampler = BucketSampler(
        dataset.lengths,
        batch_size,
        bucket_boundaries(config.sample_rate / config.data.hop_length),
        num_replicas=ctx.world_size,
        rank=ctx.rank,
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=options.num_workers,
        pin_memory=ctx.device.type == "cuda",
        persistent_workers=options.num_workers > 0,
        worker_init_fn=ignore_sigint_in_worker,
    )
    state, messages, resumed = _build_state(paths, config, options, ctx, len(sampler))
    settings = StepSettings(
        dataset.spectrogram,
        config.model.segment_size,
        config.train.c_mel,
        config.train.c_kl,
        resolve_precision(options.precision, ctx.device, fp16_run=config.train.fp16_run),
        config.use_f0,
    )
    train_log = TrainLog(paths, enabled=ctx.is_main, keep_epochs=state.epoch - 1, global_step=state.global_step)
    train_log.info(repr(rvc_hparams(config, options, paths, batch_size)))
    for message in messages:
        train_log.info(message)
    train_log.info(
        f"Training on {ctx.device} ({ctx.world_size} process(es), {settings.precision.name}), batch "
        f"{batch_size} per process, {len(sampler)} steps per epoch, epochs {state.epoch}.."
        f"{options.total_epochs}"
    )
    if sampler.dropped:
        names = ", ".join(Path(entries[i].gt_wav).name for i in sampler.dropped[:5])
        train_log.warning(
            f"{len(sampler.dropped)} of {len(entries)} samples are under 0.75 s or over 6.75 s and are "
            f"not used (like RVC): {names}{' ...' if len(sampler.dropped) > 5 else ''}"
        )
    f0_files = sorted({Path(e.f0_hz) for e in entries if e.f0_hz is not None})
    result = FitResult(state.epoch, state.epoch - 1, state.global_step, dropped_samples=len(sampler.dropped))
    return _Run(
        paths,
        config,
        options,
        ctx,
        train_log,
        state,
        settings,
        loader,
        _weights_dir(options),
        f0_files,
        result,
        options.log_interval or config.train.log_interval,
        state.global_step if resumed else -1,
    )


def _build_state(
    paths: ExperimentPaths, config: ExperimentConfig, options: FitOptions, ctx: DistContext, steps_per_epoch: int
) -> tuple[TrainState, list[str], bool]:
    """Models, optimisers, schedulers and scaler: resumed from the latest pair, else from the pretrained G/D."""
    torch.manual_seed(options.seed if options.seed is not None else config.train.seed)
    net_g = Synthesizer.from_config(config.model).to(ctx.device)
    divisor_s, divisor_p = options.discriminator_divisors
    net_d = build_discriminator(config.version, channel_divisor_s=divisor_s, channel_divisor_p=divisor_p).to(ctx.device)
    optim_g, optim_d = make_optimizer(net_g, config.train), make_optimizer(net_d, config.train)
    messages: list[str] = []
    pair = find_latest_pair(paths.root)
    start_epoch, global_step, scaler_state = 1, 0, None
    if pair is not None:
        if options.pretrained_g or options.pretrained_d:
            messages.append(f"Resuming from '{pair.generator.name}'; the pretrained G/D paths are not used.")
        load_for_resume(net_d, optim_d, pair.discriminator, messages.append)
        messages.append("loaded D")
        info = load_for_resume(net_g, optim_g, pair.generator, messages.append).extra.get(RESUME_KEY) or {}
        start_epoch = pair.epoch + 1
        global_step = int(info.get("global_step", pair.epoch * steps_per_epoch))
        scaler_state = info.get("scaler")
    else:
        for role, model, path in (("G", net_g, options.pretrained_g), ("D", net_d, options.pretrained_d)):
            if path:
                load_pretrained(model, Path(path), role, config)
                messages.append(f"loaded pretrained {path}")
    scaler = resolve_precision(options.precision, ctx.device, fp16_run=config.train.fp16_run).make_scaler()
    if scaler_state and scaler.is_enabled():
        scaler.load_state_dict(scaler_state)
    state = TrainState(
        wrap(net_g, ctx),
        wrap(net_d, ctx),
        optim_g,
        optim_d,
        make_scheduler(optim_g, config.train.lr_decay, start_epoch),
        make_scheduler(optim_d, config.train.lr_decay, start_epoch),
        scaler,
        start_epoch,
        global_step,
    )
    return state, messages, pair is not None


def _weights_dir(options: FitOptions) -> Path:
    if options.weights_dir is not None:
        return Path(options.weights_dir)
    from config import Settings  # runtime settings: RVC_WEIGHTS_DIR or <repo>/weights

    return Settings.from_env().weights_dir


def _train(run: _Run, stop: StopRequest, progress: Progress | None) -> FitResult:
    state, options, result = run.state, run.options, run.result
    for epoch in range(state.epoch, options.total_epochs + 1):
        state.epoch = epoch
        started = time.time()
        steps, means = _train_epoch(run, epoch, stop, progress)
        if result.stopped:
            _finish_stopped(run, epoch, steps)
            return result
        result.epoch = epoch
        elapsed = datetime.timedelta(seconds=time.time() - started)
        run.log.info(f"====> Epoch: {epoch} [{datetime.datetime.now():%Y-%m-%d %H:%M:%S}] | ({elapsed})")
        run.log.record(
            {
                "kind": "epoch",
                "epoch": epoch,
                "step": state.global_step,
                **means,
                "lr": state.learning_rate,
                "time": time.time(),
            }
        )
        if epoch % options.save_every == 0 or epoch == options.total_epochs:
            _save(run, epoch)
        state.sched_g.step()
        state.sched_d.step()
    result.global_step = state.global_step
    if run.ctx.is_main:
        run.log.info("Training is done. The program is closed.")
        result.final_model = _export(run, run.weights_dir / f"{run.config.name}.pth", max(result.epoch, 1))
        run.log.info("saving final ckpt:Success.")
    return result


def _train_epoch(run: _Run, epoch: int, stop: StopRequest, progress: Progress | None) -> tuple[int, dict]:
    state, loader = run.state, run.loader
    loader.batch_sampler.set_epoch(epoch)
    state.net_g.train()
    state.net_d.train()
    sums: dict[str, torch.Tensor] = {}
    steps = 0
    for batch_index, batch in enumerate(loader):
        if any_rank(stop.reason() is not None, run.ctx):
            run.result.stopped, run.result.stop_reason = True, stop.reason() or "stop requested on another rank"
            return steps, {}
        losses, gen = train_step(state, run.settings, batch.to(run.ctx.device, non_blocking=True))
        steps += 1
        for key in METRIC_KEYS:
            sums[key] = sums.get(key, 0) + losses[key].float()
        if run.ctx.is_main and (state.global_step - 1) % run.log_interval == 0:
            _log_step(run, epoch, batch_index, losses, gen, batch)
        if run.ctx.is_main and progress is not None:
            done = (epoch - 1 + (batch_index + 1) / len(loader)) / run.options.total_epochs
            progress(min(done, 1.0), f"epoch {epoch}/{run.options.total_epochs}, step {state.global_step}")
    return steps, {key: float(value) / max(steps, 1) for key, value in sums.items()}


def _log_step(run: _Run, epoch: int, batch_index: int, losses: Losses, gen, batch) -> None:
    step, lr = run.state.global_step - 1, run.state.learning_rate
    values = {key: float(value) for key, value in losses.items()}
    mel, kl = min(values["loss/g/mel"], 75.0), min(values["loss/g/kl"], 9.0)  # RVC clamps these for display
    run.log.info(f"Train Epoch: {epoch} [{100.0 * batch_index / len(run.loader):.0f}%]")
    run.log.info(str([step, lr]))
    run.log.info(
        f"loss_disc={values['loss/d/total']:.3f}, loss_gen={values['loss/g/gen']:.3f}, "
        f"loss_fm={values['loss/g/fm']:.3f},loss_mel={mel:.3f}, loss_kl={kl:.3f}"
    )
    board = {key: value for key, value in values.items() if key != "loss/g/gen"}
    board.update({"loss/g/mel": mel, "loss/g/kl": kl, "learning_rate": lr})
    images = {
        "slice/mel_org": gen.real_mel[0].detach().float().cpu(),
        "slice/mel_gen": gen.fake_mel[0].detach().cpu(),
        "all/mel": run.settings.spectrogram.mel_from_linear(batch.spec[0].float()).cpu(),
    }
    run.log.scalars(board, step, images)
    run.log.record(
        {
            "kind": "step",
            "epoch": epoch,
            "step": step,
            **{k: values[k] for k in METRIC_KEYS},
            "lr": lr,
            "time": time.time(),
        }
    )


def _save(run: _Run, epoch: int) -> None:
    state = run.state
    if run.ctx.is_main and state.global_step != run.last_saved_step:
        pair = save_pair(
            run.paths.root,
            state.generator,
            state.discriminator,
            (state.optim_g, state.optim_d),
            epoch=epoch,
            global_step=state.global_step,
            learning_rate=run.config.train.learning_rate,
            latest_only=run.options.save_latest_only,
            resume_info={"scaler": state.scaler.state_dict() if state.scaler.is_enabled() else None},
        )
        for path in (pair.generator, pair.discriminator):
            run.log.info(f"Saving model and optimizer state at epoch {epoch} to {path}")
        run.result.checkpoints.append(pair)
        run.last_saved_step = state.global_step
        if run.options.save_small_model_every_save:
            name = f"{run.config.name}_e{epoch}_s{state.global_step}"
            run.result.small_models.append(_export(run, run.weights_dir / f"{name}.pth", epoch))
            run.log.info(f"saving ckpt {run.config.name}_e{epoch}:Success.")
    barrier(run.ctx)


def _export(run: _Run, path: Path, epoch: int) -> Path:
    stats = f0_statistics(run.f0_files) if run.config.use_f0 else None
    return export_voice(run.state.generator, run.config, path, epoch=epoch, f0_stats=stats)


def _finish_stopped(run: _Run, epoch: int, steps_in_epoch: int) -> None:
    """Save the state reached (a partly trained epoch counts as trained) and say where training stopped."""
    result = run.result
    result.global_step = run.state.global_step
    reached = epoch if steps_in_epoch else epoch - 1
    if reached >= 1 and run.state.global_step > 0:
        result.epoch = reached
        _save(run, reached)
        partly = f", epoch {epoch} cut short after {steps_in_epoch} step(s)" if steps_in_epoch else ""
        run.log.info(
            f"stopped at epoch {reached}, step {run.state.global_step} ({result.stop_reason}{partly}); "
            f"checkpoint saved for epoch {reached}."
        )
    else:
        run.log.info(f"stopped before any training step ({result.stop_reason}); nothing to save.")
    if run.ctx.is_main:
        run.paths.stop_file.unlink(missing_ok=True)
