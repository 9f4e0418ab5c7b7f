"""``python -m infer convert|batch|info|ckpt|doctor``: the inference command line.

    python -m infer convert --voice alice --input song.mp3 --output song_alice.flac
    python -m infer batch --voice alice --input-dir songs/ --output-dir out/ --format mp3
    python -m infer info weights/alice.pth
    python -m infer ckpt merge|info|set-info|extract|bundle|import|export-onnx ...
    python -m infer doctor

Voices are looked up in weights/ ($RVC_WEIGHTS_DIR), indexes in logs/
($RVC_LOGS_DIR) and assets/indices, models in assets/ ($RVC_ASSETS_DIR).
Exit codes: 0 success, 1 conversion or input error, 2 usage error.
"""

from __future__ import annotations

import argparse

from infer.cli import batch, ckpt, convert, doctor, info
from infer.cli.common import run_command


def build_parser() -> argparse.ArgumentParser:
    """The parser with its three sub-commands."""
    parser = argparse.ArgumentParser(
        prog="python -m infer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (convert, batch, info, ckpt, doctor):
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command and return its exit code."""
    args = build_parser().parse_args(argv)
    return run_command(args.handler, args)


if __name__ == "__main__":
    raise SystemExit(main())
