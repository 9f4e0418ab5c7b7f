"""Command line for training one experiment: ``python -m train.fit_main --exp-dir logs/NAME [options]``.

Several processes (GPUs, or CPU processes with gloo) through torchrun::

    torchrun --nproc_per_node 2 -m train.fit_main --exp-dir logs/NAME --epochs 200

Exit status 0 when training finished or was stopped cleanly (Ctrl+C, SIGTERM
or a ``STOP`` file in the experiment folder), 1 on an error (the message says
what to do), 130 on a second Ctrl+C.  With ``--json-progress`` rank 0 prints
one JSON line per step: ``{"progress": 0.25, "message": "epoch 5/20, step 80"}``,
and at the end one line with the result: ``{"progress": 1.0, "message": ...,
"result": {"epoch": ..., "global_step": ..., "stopped": ..., "final_model": ...}}``.

Rank 0 holds the experiment's lock (:mod:`train.lock`) for the whole run, or
accepts the one its launcher holds (``python -m train fit`` under torchrun);
when another process trains the experiment it exits 1 saying which, and
torchrun ends the other ranks.  The other ranks never touch the lock.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys

from infer.safe_load import ModelFileError
from train.data import DatasetError
from train.experiment import ExperimentError
from train.flags import quote_command
from train.lock import experiment_lock
from train.loop import FitOptions, FitResult, fit


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.fit_main", description="Train an RVC voice model.")
    parser.add_argument(
        "--exp-dir", required=True, help="experiment folder (logs/<name>) with config.json and filelist"
    )
    parser.add_argument("--epochs", type=int, default=20, help="train up to this epoch (total, resumes included)")
    parser.add_argument("--save-every", type=int, default=5, help="save G_/D_ checkpoints every N epochs")
    parser.add_argument("--latest-only", action="store_true", help="keep only G_2333333.pth/D_2333333.pth")
    parser.add_argument(
        "--save-small-models", action="store_true", help="also write weights/<name>_e<epoch>_s<step>.pth at each save"
    )
    parser.add_argument("--pretrained-g", default=None, help="pretrained generator (any G_*.pth or f0G40k.pth)")
    parser.add_argument("--pretrained-d", default=None, help="pretrained discriminator")
    parser.add_argument("--batch-size", type=int, default=None, help="per process (default: the config's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--log-interval", type=int, default=None, help="log every N steps (default: the config's)")
    parser.add_argument("--weights-dir", default=None, help="where voice models go (default: weights/)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    parser.add_argument(
        "--disc-divisors",
        type=int,
        nargs=2,
        default=(1, 1),
        metavar=("SCALE", "PERIOD"),
        help="narrow the discriminator's channels (tiny test models only)",
    )
    parser.add_argument("--json-progress", action="store_true", help="print progress as JSON lines (rank 0)")
    return parser


def options_from_args(args: argparse.Namespace) -> FitOptions:
    return FitOptions(
        total_epochs=args.epochs,
        save_every=args.save_every,
        save_latest_only=args.latest_only,
        save_small_model_every_save=args.save_small_models,
        pretrained_g=args.pretrained_g,
        pretrained_d=args.pretrained_d,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        num_workers=args.num_workers,
        log_interval=args.log_interval,
        weights_dir=args.weights_dir,
        seed=args.seed,
        threads=args.threads,
        discriminator_divisors=tuple(args.disc_divisors),
    )


def fit_main_args(exp_dir: str | os.PathLike, options: FitOptions) -> list[str]:
    """The flags of this command for ``options`` (the inverse of :func:`options_from_args`)."""
    args = [
        "--exp-dir",
        str(exp_dir),
        "--epochs",
        str(options.total_epochs),
        "--save-every",
        str(options.save_every),
        "--device",
        options.device,
        "--precision",
        options.precision,
        "--num-workers",
        str(options.num_workers),
        "--disc-divisors",
        *(str(d) for d in options.discriminator_divisors),
    ]
    args += ["--latest-only"] * options.save_latest_only + ["--save-small-models"] * options.save_small_model_every_save
    for flag, value in (
        ("--pretrained-g", options.pretrained_g),
        ("--pretrained-d", options.pretrained_d),
        ("--batch-size", options.batch_size),
        ("--log-interval", options.log_interval),
        ("--weights-dir", options.weights_dir),
        ("--seed", options.seed),
        ("--threads", options.threads),
    ):
        if value is not None:
            args += [flag, str(value)]
    return args


def result_summary(result: FitResult) -> dict:
    """The JSON-ready facts of a :class:`FitResult` (paths as strings)."""
    return {
        "start_epoch": result.start_epoch,
        "epoch": result.epoch,
        "global_step": result.global_step,
        "stopped": result.stopped,
        "stop_reason": result.stop_reason,
        "dropped_samples": result.dropped_samples,
        "final_model": str(result.final_model) if result.final_model else None,
        "checkpoints": [str(pair.generator) for pair in result.checkpoints],
        "small_models": [str(path) for path in result.small_models],
    }


def _print_progress(fraction: float, message: str) -> None:
    print(json.dumps({"progress": round(fraction, 6), "message": message}), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    is_main = os.environ.get("RANK", "0") == "0"
    logging.basicConfig(
        level=logging.INFO if is_main else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        options = options_from_args(args)
        command = quote_command(["python", "-m", "train.fit_main", *(sys.argv[1:] if argv is None else argv)])
        lock = experiment_lock(args.exp_dir, command=command) if is_main else contextlib.nullcontext()
        with lock:
            result = fit(args.exp_dir, options, progress=_print_progress if args.json_progress and is_main else None)
    except KeyboardInterrupt:
        print("Training interrupted without saving.", file=sys.stderr)
        return 130
    except (ExperimentError, DatasetError, ModelFileError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if is_main:
        state = f"stopped ({result.stop_reason})" if result.stopped else "finished"
        message = f"Training {state} at epoch {result.epoch}, step {result.global_step}."
        print(message, file=sys.stderr)
        if args.json_progress:
            print(json.dumps({"progress": 1.0, "message": message, "result": result_summary(result)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
