"""Running one step from parsed flags: stop requests, progress and output.

Output rules: without ``--json-progress``, progress is a redrawn line on
stderr (plain lines when not a terminal), the steps' log lines go to stderr and
results to stdout.  With ``--json-progress``, stdout holds only JSON lines,
``{"progress": 0.42, "message": "fit: epoch 3/20, step 96"}``, the last one
``{"progress": 1.0, "message": <summary>, "step": <step>, "stopped": <bool>,
"result": {...}}``; everything else goes to stderr.  Errors are one ``error:
...`` line on stderr (exit 1; usage errors exit 2).  A stop (Ctrl+C, SIGTERM or
the experiment's ``STOP`` file) ends the step cleanly with exit 0.  The steps
that write into the experiment hold its lock (:mod:`train.lock`) from before
the old stop file is cleared to the end; a busy experiment is an error (exit 1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from typing import Any, TextIO

from infer.cli.common import Console, ProgressReporter
from train.cli.args import request_from_args
from train.commands import REQUESTS
from train.distributed import StopRequest
from train.fit_step import run_fit
from train.flags import quote_command
from train.lock import experiment_lock
from train.oneclick import run_all
from train.reuse import run_reuse
from train.steps import Callbacks, Folders, run_check, run_extract, run_index, run_preprocess

RUNNERS: dict[str, Callable[..., Any]] = {
    "preprocess": run_preprocess,
    "check": run_check,
    "extract": run_extract,
    "fit": run_fit,
    "index": run_index,
    "all": run_all,
    "reuse": run_reuse,
}
UNLOCKED_STEPS = frozenset({"check"})  # it only reads the experiment


class Output:
    """Where a step writes (see the module docstring)."""

    def __init__(self, json_progress: bool, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.json_progress = json_progress
        self.stdout, self.stderr = stdout or sys.stdout, stderr or sys.stderr
        self.reporter = ProgressReporter(self.stderr, enabled=not json_progress)

    def _json(self, data: dict) -> None:
        print(json.dumps(data, ensure_ascii=False, default=str), file=self.stdout, flush=True)

    def progress(self, fraction: float, message: str) -> None:
        if self.json_progress:
            self._json({"progress": round(float(fraction), 6), "message": message})
        else:
            self.reporter(fraction, message)

    def log(self, line: str) -> None:
        self.reporter.end_line()
        print(line, file=self.stderr, flush=True)

    def say(self, text: str) -> None:
        self.reporter.end_line()
        print(text, file=self.stderr if self.json_progress else self.stdout, flush=True)

    def finish(self, step: str, outcome: Any) -> None:
        """The outcome's summary, and with ``--json-progress`` the final JSON line."""
        text = outcome.text()
        self.say(text)
        if self.json_progress:
            data = (
                outcome.to_json() if hasattr(outcome, "to_json") else asdict(outcome) if is_dataclass(outcome) else {}
            )
            self._json(
                {
                    "progress": 1.0,
                    "message": text.splitlines()[0] if text else step,
                    "step": step,
                    "stopped": bool(getattr(outcome, "cancelled", False)),
                    "result": data,
                }
            )


def handle(args: argparse.Namespace, console: Console) -> int:
    """Run the parsed step; returns its exit code (errors are raised and reported by the caller)."""
    request = request_from_args(REQUESTS[args.step], args)
    output = Output(args.json_progress)
    paths = Folders.of(request).experiment(request.name)
    locked = args.step not in UNLOCKED_STEPS
    command = quote_command(request.argv(python="python"))
    lock = experiment_lock(paths.root, command=command, log=output.log) if locked else contextlib.nullcontext()
    try:
        with lock, StopRequest(paths.stop_file) as stop:
            if locked:  # a stop file left from an earlier stop must not end this run (a reader leaves it alone)
                paths.stop_file.unlink(missing_ok=True)
            callbacks = Callbacks(
                progress=output.progress, log=output.log, say=output.say, cancel=lambda: stop.reason() is not None
            )
            outcome = RUNNERS[args.step](request, callbacks)
    finally:
        output.reporter.end_line()
    output.finish(args.step, outcome)
    return 0
