"""Training in several processes: ``torchrun`` started as a child process from an argument list (no shell).

The child runs :mod:`train.fit_main` with ``--json-progress``; its JSON lines
become progress calls here and its last line carries the result.  A stop
request (``cancel()``) writes the experiment's stop file, which every rank
sees at the same step, so training ends with a checkpoint; a second Ctrl+C
here terminates the child.

The experiment's lock (:mod:`train.lock`), held by this process, covers the
whole run: the child is told its token, so rank 0 accepts it instead of
refusing it; the other ranks do not look at the lock.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from train.experiment import ExperimentError
from train.fit_main import fit_main_args
from train.lock import held_lock
from train.loop import FitOptions

_POLL_SECONDS = 0.2


class TrainingProcessError(ExperimentError):
    """The torchrun child failed; its own messages were passed on before this is raised."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for torchrun's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def torchrun_argv(exp_dir: str | os.PathLike, options: FitOptions, nproc: int, *, port: int | None = None) -> list[str]:
    """``python -m torch.distributed.run --nproc_per_node N ... -m train.fit_main <flags> --json-progress``."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port or free_port()),
        "-m",
        "train.fit_main",
        *fit_main_args(exp_dir, options),
        "--json-progress",
    ]


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line.rstrip("\r\n"))
    lines.put(None)


def run_torchrun(
    argv: list[str],
    *,
    stop_file: Path,
    env: Mapping[str, str] | None = None,
    progress: Callable[[float, str], None] | None = None,
    log: Callable[[str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict:
    """Run ``argv`` (from :func:`torchrun_argv`) to the end; returns the result dict rank 0 printed.

    Raises :class:`TrainingProcessError` when the child exits with an error or without a result.
    """
    lock = held_lock(stop_file.parent)
    child_env = dict(os.environ if env is None else env)
    if lock is not None:
        child_env = lock.child_env(child_env)
    process = subprocess.Popen(
        argv,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    )
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True, name="torchrun-output")
    reader.start()
    result: dict | None = None
    stop_sent = False
    try:
        while True:
            try:
                line = lines.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line:
                result = _handle_line(line, progress, log) or result
            if not stop_sent and cancel is not None and cancel():
                stop_sent = True
                stop_file.parent.mkdir(parents=True, exist_ok=True)
                stop_file.touch()
                if log is not None:
                    log(f"stop requested: wrote '{stop_file}'; the training processes save and stop at the next step")
        code = process.wait()
    except BaseException:  # a second Ctrl+C, or an error here: the child must not outlive us
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise
    finally:
        reader.join(timeout=5)
    if code != 0:
        raise TrainingProcessError(
            f"Training under torchrun failed with exit code {code}; see its messages above "
            f"and '{stop_file.parent / 'train.log'}'."
        )
    if result is None:
        raise TrainingProcessError("Training under torchrun ended without reporting a result; see its messages above.")
    return result


def _handle_line(line: str, progress: Callable | None, log: Callable | None) -> dict | None:
    """Pass a child's line on as progress or log; returns the result dict from the final line."""
    if line.startswith("{") and line.endswith("}"):
        try:
            data = json.loads(line)
        except ValueError:
            data = None
        if isinstance(data, dict) and "progress" in data:
            if progress is not None:
                progress(float(data["progress"]), str(data.get("message", "")))
            return data.get("result") if isinstance(data.get("result"), dict) else None
    if log is not None:
        log(line)
    return None
