"""The trainer's logs on rank 0: ``train.log`` in RVC's format, ``metrics.jsonl`` and TensorBoard.

:class:`TrainLog` writes all three; :func:`rvc_hparams` is the hyper-parameter
dict RVC logs as the first line of ``train.log`` (its ckpt tab reads it back).
``metrics.jsonl`` holds one JSON object per line: ``{"kind": "step"|"epoch",
"epoch", "step", "loss/g/total", "loss/d/total", "loss/g/mel", "loss/g/kl",
"loss/g/fm", "grad_norm_g", "grad_norm_d", "lr", "time"}``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from infer.atomic import atomic_write_text
from train.experiment import ExperimentConfig, ExperimentPaths

if TYPE_CHECKING:
    from train.loop import FitOptions

log = logging.getLogger("train.loop")  # the trainer's console messages keep their logger name


class TrainLog:
    """Rank 0's logs: ``train.log`` (asctime TAB name TAB level TAB message), ``metrics.jsonl``, TensorBoard.

    On other ranks (``enabled=False``) every method does nothing.  Metrics lines
    of epochs after ``keep_epochs`` (training lost since the last checkpoint) are
    dropped when the log opens, and TensorBoard purges steps from ``global_step``.
    """

    def __init__(self, paths: ExperimentPaths, *, enabled: bool, keep_epochs: int, global_step: int) -> None:
        self.enabled = enabled
        self._logger = logging.Logger(paths.name, logging.DEBUG)  # unregistered: no global logging state
        self._writer = None
        self._metrics = None
        if not enabled:
            return
        handler = logging.FileHandler(paths.train_log, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s\t%(name)s\t%(levelname)s\t%(message)s"))
        self._logger.addHandler(handler)
        self._keep_metrics(paths.metrics, keep_epochs)
        self._metrics = open(paths.metrics, "a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: metrics.jsonl still has everything
            self.warning("TensorBoard is not installed (pip install tensorboard); no event files written.")
        else:
            self._writer = SummaryWriter(log_dir=str(paths.root), purge_step=global_step)

    @staticmethod
    def _keep_metrics(path: Path, keep_epochs: int) -> None:
        if not path.exists():
            return
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if int(json.loads(line)["epoch"]) <= keep_epochs:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue
        atomic_write_text("".join(f"{line}\n" for line in kept), path)

    def info(self, message: str) -> None:
        if self.enabled:
            self._logger.info(message)
            log.info(message)

    def warning(self, message: str) -> None:
        if self.enabled:
            self._logger.warning(message)
            log.warning(message)

    def record(self, record: dict[str, Any]) -> None:
        """One metrics.jsonl line, flushed at once so a UI can plot it live."""
        if self._metrics is not None:
            self._metrics.write(json.dumps(record) + "\n")
            self._metrics.flush()

    def scalars(self, values: dict[str, float], step: int, images: dict[str, torch.Tensor]) -> None:
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(name, value, step)
            for name, image in images.items():
                low, high = image.min(), image.max()
                self._writer.add_image(name, ((image - low) / (high - low + 1e-9)).flip(0)[None], step)
            self._writer.flush()

    def close(self) -> None:
        for handler in list(self._logger.handlers):
            handler.close()
            self._logger.removeHandler(handler)
        if self._metrics is not None:
            self._metrics.close()
        if self._writer is not None:
            self._writer.close()


def rvc_hparams(config: ExperimentConfig, options: FitOptions, paths: ExperimentPaths, batch_size: int) -> dict:
    """RVC's hyper-parameter dict (the first train.log message; the ckpt tab reads sample_rate/if_f0/version)."""
    hps = config.to_json()
    hps["train"]["batch_size"] = batch_size
    hps["data"]["training_files"] = str(paths.filelist)
    hps.update(
        model_dir=str(paths.root),
        experiment_dir=str(paths.root),
        save_every_epoch=options.save_every,
        name=config.name,
        total_epoch=options.total_epochs,
        pretrainG=str(options.pretrained_g or ""),
        pretrainD=str(options.pretrained_d or ""),
        version=config.version,
        gpus="",
        sample_rate=config.tag,
        if_f0=int(config.use_f0),
        if_latest=int(options.save_latest_only),
        save_every_weights=str(int(options.save_small_model_every_save)),
        if_cache_data_in_gpu=0,
    )
    return hps
