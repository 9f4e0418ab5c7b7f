"""``python -m train STEP``: train a voice from the command line, step by step or in one go.

    python -m train all --name alice --dataset recordings/alice --sr 40k --epochs 200
    python -m train preprocess --name alice --dataset recordings/alice
    python -m train check --name alice
    python -m train extract --name alice --f0-method rmvpe --gpus 0
    python -m train fit --name alice --epochs 200 --batch-size 8 --gpus 0-1
    python -m train index --name alice
    python -m train reuse --from alice --to alice_v1 --version v1

Steps and flags mirror the web UI's Train tab.  Experiments live in logs/
($RVC_LOGS_DIR), voice models go to weights/ ($RVC_WEIGHTS_DIR), models are read
from assets/ ($RVC_ASSETS_DIR).  Exit codes: 0 done (or stopped cleanly by
Ctrl+C, SIGTERM or a STOP file in the experiment folder), 1 error, 2 usage error.
Only one process at a time may write an experiment: a step is refused (exit 1)
while another holds logs/<name>/experiment.lock (see train/lock.py).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import sys

from infer.cli.common import run_command
from train.cli.args import add_output_arguments, add_request_arguments
from train.commands import REQUESTS

STEP_HELP = {
    "preprocess": "step 1: cut the recordings into training pieces",
    "check": "check the preprocessed dataset (usable minutes, dropped pieces, clipping)",
    "extract": "step 2: pitch and content features of every piece",
    "fit": "step 3: write the filelist and train (several GPUs under torchrun)",
    "index": "step 4: build the feature index",
    "all": "one-click training: every step in order",
    "reuse": "start a new experiment from another one's pieces, pitch and features",
}


def build_parser() -> argparse.ArgumentParser:
    """The parser with one sub-command per step, each built from its request dataclass."""
    parser = argparse.ArgumentParser(
        prog="python -m train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    steps = parser.add_subparsers(dest="step", metavar="STEP", required=True)
    for step, cls in REQUESTS.items():
        sub = steps.add_parser(
            step,
            help=STEP_HELP[step],
            description=f"{STEP_HELP[step]}.\n\n{inspect.cleandoc(cls.__doc__ or '')}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_request_arguments(sub, cls)
        add_output_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the step and return its exit code."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:  # the trainer's console messages, as RVC prints them
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    from train.cli.run import handle  # the steps' modules load torch: not needed for --help

    return run_command(handle, args)


if __name__ == "__main__":
    raise SystemExit(main())
