"""Background jobs for the web UI: processes started from argument lists, watched, stoppable.

A :class:`Job` runs one or more steps (``python -m train preprocess ...``,
then ``extract``, then ``fit`` ...) one after another.  Each step is a child
process started without a shell in its own process group, so a stop reaches
the whole step (DataLoader workers, torchrun children) and nothing else.
Its stdout and stderr lines are kept in a bounded log; lines that are JSON
objects with ``progress`` / ``message`` keys (``--json-progress``) update the
job's progress instead.  The UI polls a job (a timer, never a blocked
worker), so any number of browser sessions can watch the same job.

A step that fails shows its last ``error: ...`` line as the job's message
(such as the library's refusal when another process trains the experiment,
see :mod:`train.lock`).

Stopping (RVC FAQ Q13: its Stop did not stop anything): write the stop file
of the experiment (the trainer saves a checkpoint and exits), send SIGTERM to
the step (CTRL_BREAK on Windows), and kill the whole process group when it
is still alive ``kill_after`` seconds later.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from webui.job_output import MetricsReader, parse_progress_line
from webui.job_types import JobConflictError, JobSnapshot, JobState, JobStep

LOG_LINES = 2000
KEEP_FINISHED = 50
_IS_WINDOWS = sys.platform == "win32"
__all__ = ["Job", "JobConflictError", "JobRunner", "JobSnapshot", "JobState", "JobStep"]


@dataclass
class Job:
    """A running or finished job; create it with :meth:`JobRunner.start`."""

    job_id: str
    steps: tuple[JobStep, ...]
    key: str | None = None
    stop_file: Path | None = None
    metrics_file: Path | None = None
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    kill_after: float = 30.0
    started: float = field(default_factory=time.time)
    state: JobState = JobState.RUNNING
    step_index: int = 0
    progress: float | None = None
    message: str = ""
    returncode: int | None = None
    finished: float | None = None
    _lines: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _stop_requested: bool = field(default=False, repr=False)
    _step_stopped: bool = field(default=False, repr=False)  # a step said it stopped early (a stop file from elsewhere)
    _last_error: str = field(default="", repr=False)  # the running step's last "error: ..." line
    _process: subprocess.Popen | None = field(default=None, repr=False)
    _metrics: MetricsReader | None = field(default=None, repr=False)

    # ---- running (supervisor thread) ----

    def _run(self) -> None:
        state = JobState.FINISHED
        try:
            for index, step in enumerate(self.steps):
                with self._lock:
                    if self._stop_requested:
                        state = JobState.STOPPED
                        break
                    self.step_index, self.progress, self.message = index, None, step.label
                    self._last_error = ""
                    self._lines.append(f"$ {step.command_line or ' '.join(step.argv)}")
                code = self._run_step(step)
                with self._lock:
                    self.returncode = code
                    if self._stop_requested or self._step_stopped:
                        state = JobState.STOPPED
                        break
                    if code != 0:
                        self._lines.append(f"[{step.label}] exited with status {code}")
                        self.message = self._last_error or self.message
                        state = JobState.FAILED
                        break
        except OSError as exc:  # the program could not be started
            with self._lock:
                self._lines.append(f"could not start {self.steps[self.step_index].argv[0]!r}: {exc}")
            state = JobState.FAILED
        except Exception as exc:  # never leave a job "running" (and its experiment locked) after a supervisor bug
            with self._lock:
                self._lines.append(f"error: the job supervisor failed: {type(exc).__name__}: {exc}")
                process = self._process
            if process is not None:
                _kill_group(process)
                process.wait()
            state = JobState.FAILED
        with self._lock:
            self.state, self.finished = state, time.time()
            if state is JobState.FINISHED:
                self.progress = 1.0
        self._done.set()

    def _run_step(self, step: JobStep) -> int:
        env = dict(self.env if self.env is not None else os.environ)
        env.update(PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
        extra = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if _IS_WINDOWS else {"start_new_session": True}
        process = subprocess.Popen(
            list(step.argv),
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            **extra,
        )
        with self._lock:
            self._process = process
            stop_now = self._stop_requested
        if stop_now:  # stop was pressed while this step was being started
            self._signal_stop(process)
        assert process.stdout is not None
        for line in process.stdout:
            self._take_line(line.rstrip("\r\n"))
        code = process.wait()
        _kill_group(process)  # leftovers of the step (orphaned workers) must not outlive it
        with self._lock:
            self._process = None
        return code

    def _take_line(self, line: str) -> None:
        update = parse_progress_line(line)
        with self._lock:
            if update is None:
                self._lines.append(line)
                if line.startswith("error:"):
                    self._last_error = line.removeprefix("error:").strip()
                return
            if update.progress is not None:
                self.progress = update.progress
            if update.message:
                self.message = update.message
            self._step_stopped = self._step_stopped or update.stopped

    # ---- control (any thread) ----

    def stop(self) -> bool:
        """Ask the job to stop; returns False when it had already ended.

        The stop file is written, the running step gets SIGTERM (CTRL_BREAK on
        Windows) and its process group is killed after ``kill_after`` seconds.
        Later steps are not started.  Calling it again does nothing more.
        """
        with self._lock:
            if self._done.is_set() or self._stop_requested:
                return not self._done.is_set()
            self._stop_requested = True
            self._lines.append("stop requested")
            process = self._process
        if self.stop_file is not None:
            try:
                self.stop_file.parent.mkdir(parents=True, exist_ok=True)
                self.stop_file.touch()
            except OSError as exc:
                self._take_line(f"could not write the stop file {self.stop_file}: {exc}")
        if process is not None:
            self._signal_stop(process)
        return True

    def _signal_stop(self, process: subprocess.Popen) -> None:
        try:
            process.send_signal(signal.CTRL_BREAK_EVENT if _IS_WINDOWS else signal.SIGTERM)
        except (ProcessLookupError, OSError):
            pass
        threading.Thread(target=self._kill_later, args=(process,), daemon=True, name=f"job-{self.job_id}-kill").start()

    def _kill_later(self, process: subprocess.Popen) -> None:
        try:
            process.wait(timeout=self.kill_after)
        except subprocess.TimeoutExpired:
            self._take_line(f"still running {self.kill_after:g} s after the stop request: killed")
            _kill_group(process)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (tests, shutdown); True when it has ended."""
        return self._done.wait(timeout)

    # ---- observing (any thread) ----

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def log_tail(self, lines: int = 200) -> str:
        with self._lock:
            return "\n".join(list(self._lines)[-lines:])

    def metrics(self) -> list[dict]:
        """All records of the experiment's ``metrics.jsonl`` so far (read incrementally)."""
        if self.metrics_file is None:
            return []
        if self._metrics is None:
            self._metrics = MetricsReader(self.metrics_file)
        return self._metrics.read()

    def snapshot(self, log_lines: int = 200) -> JobSnapshot:
        with self._lock:
            count = len(self.steps)
            done_steps = self.step_index + (1 if self.state is JobState.FINISHED else 0)
            fraction = 0.0 if self.state is JobState.FINISHED else (self.progress or 0.0)
            overall = min(1.0, (done_steps + fraction) / count)
            end = self.finished or time.time()
            return JobSnapshot(
                self.job_id,
                self.key,
                self.state,
                self.step_index,
                count,
                self.steps[self.step_index].label,
                self.progress,
                overall,
                self.message,
                self.returncode,
                "\n".join(list(self._lines)[-log_lines:]),
                end - self.started,
            )


def _kill_group(process: subprocess.Popen) -> None:
    """Kill the step's whole process group (POSIX) or process tree (Windows)."""
    try:
        if _IS_WINDOWS:
            if process.poll() is None:
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True, check=False)
        else:
            os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


class JobRunner:
    """One per server: starts jobs, finds them by id or key, stops them all at exit.

    Thread-safe.  At most one running job per ``key`` (an experiment name), so
    two browser tabs cannot train the same experiment at once.
    """

    def __init__(self, *, kill_after: float = 30.0) -> None:
        self.kill_after = kill_after
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        weakref.finalize(self, _stop_all, self._jobs)

    def start(
        self,
        steps: Sequence[JobStep],
        *,
        key: str | None = None,
        stop_file: str | Path | None = None,
        metrics_file: str | Path | None = None,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Job:
        """Start ``steps`` in a background thread and return the job at once.

        Raises :class:`JobConflictError` when a job with the same ``key`` is running.
        """
        if not steps:
            raise ValueError("a job needs at least one step")
        with self._lock:
            if key is not None and (running := self.running_for(key, locked=True)) is not None:
                raise JobConflictError(
                    f"'{key}' is busy: job {running.job_id} ({running.steps[running.step_index].label}) "
                    "is still running; stop it or wait for it to finish."
                )
            job = Job(
                f"{next(self._ids)}-{int(time.time())}",
                tuple(steps),
                key,
                Path(stop_file) if stop_file else None,
                Path(metrics_file) if metrics_file else None,
                Path(cwd) if cwd else None,
                dict(env) if env is not None else None,
                self.kill_after,
            )
            self._jobs[job.job_id] = job
            self._forget_old()
        threading.Thread(target=job._run, daemon=True, name=f"job-{job.job_id}").start()
        return job

    def get(self, job_id: str | None) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id) if job_id else None

    def running_for(self, key: str, *, locked: bool = False) -> Job | None:
        """The running job for ``key``, if any."""
        if not locked:
            with self._lock:
                return self.running_for(key, locked=True)
        return next((j for j in self._jobs.values() if j.key == key and j.running), None)

    def latest_for(self, key: str) -> Job | None:
        """The most recently started job for ``key`` (running or not)."""
        with self._lock:
            matches = [j for j in self._jobs.values() if j.key == key]
        return max(matches, key=lambda j: j.started) if matches else None

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every running job and wait up to ``timeout`` seconds for them."""
        _stop_all(self._jobs, timeout)

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if not j.running]
        for job in sorted(finished, key=lambda j: j.started)[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.job_id]


def _stop_all(jobs: dict[str, Job], timeout: float = 5.0) -> None:
    running = [j for j in list(jobs.values()) if j.running]
    for job in running:
        job.stop()
    deadline = time.monotonic() + timeout
    for job in running:
        if not job.wait(max(0.0, deadline - time.monotonic())):
            with job._lock:
                process = job._process
            if process is not None:
                _kill_group(process)
