"""``python -m infer doctor``: check the installation and say what to do about each problem.

Python, the torch build and the GPU (kernels for its architecture, memory,
precision), the model files, the pitch weights of the crepe and fcpe
methods, optional packages, and the weights/ and logs/ folders.  Exit code 0
when nothing fails (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from infer.cli.common import Console


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``doctor`` on ``subparsers``."""
    parser = subparsers.add_parser("doctor", help="check the installation", description=__doc__)
    parser.add_argument("--assets-dir", type=Path, help="model files folder (default: assets/ or $RVC_ASSETS_DIR)")
    parser.add_argument("--weights-dir", type=Path, help="voices folder (default: weights/ or $RVC_WEIGHTS_DIR)")
    parser.add_argument("--logs-dir", type=Path, help="experiments folder (default: logs/ or $RVC_LOGS_DIR)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace, console: Console) -> int:
    """Print the findings; 0 when none failed, else 1."""
    from infer.doctor import check_installation

    report = check_installation(assets_dir=args.assets_dir, weights_dir=args.weights_dir, logs_dir=args.logs_dir)
    if args.json:
        console.json(report.to_json())
    else:
        console.result(report.text())
        console.result("everything needed works" if report.ok else "some things will not work: see the → lines")
    return 0 if report.ok else 1
