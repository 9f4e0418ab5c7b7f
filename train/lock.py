"""One writer per experiment: a lock file ``logs/<name>/experiment.lock`` that every step takes.

The steps that write into an experiment folder (preprocess, extract, fit,
index, all, reuse's target, and ``python -m train.fit_main``) hold the lock
while they run; ``check`` only reads and does not.  The CLI, the web UI (it
runs the CLI) and torchrun therefore all obey it.  The file is created with
``O_CREAT | O_EXCL`` (atomic on POSIX and Windows, no ``fcntl``) and holds a
JSON description of its owner: pid, host, start time, command and a random token.

* A live owner is refused with :class:`ExperimentBusyError`, naming the process.
* A stale lock (its pid is not alive on this host, or the file is unreadable
  garbage older than a few seconds) is taken over, with a log line.
* A lock of another host cannot be checked and counts as live.
* The lock is released when the ``with`` block ends (normally, by an exception,
  by KeyboardInterrupt, or by SIGTERM, which it turns into ``SystemExit`` when
  nothing else handles SIGTERM).
* Nested ``with experiment_lock(root)`` in one thread reuse the outer lock, so
  ``all`` can run its steps.  A child process given ``child_env()`` (the
  torchrun launcher's ranks) accepts its parent's lock instead of taking one.

Taking the lock also removes the temporary files (``.<name>.<random>.tmp``, see
:func:`infer.atomic.atomic_path`) that a killed run left in the folder.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from train.experiment import ExperimentError, ExperimentPaths, remove_stale_temp_files

INHERITED_LOCK_ENV = "RVC_STUDIO_EXPERIMENT_LOCK"  # the token of a lock the parent process holds for us
_YOUNG_GARBAGE_SECONDS = 5.0  # a lock file this young may still be being written by its owner
_HELD: contextvars.ContextVar[dict[Path, ExperimentLock]] = contextvars.ContextVar("held_experiment_locks")
log = logging.getLogger(__name__)
_STILL_ACTIVE = 259  # Windows' exit code of a process that has not ended
_ACCESS_DENIED = 5


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (a zombie counts as alive)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists but belongs to another user
        return True
    return True


def _windows_pid_alive(pid: int) -> bool:
    """Best effort through the Win32 API (``os.kill`` would terminate the process on Windows)."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
    kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == _ACCESS_DENIED  # exists, but is not ours to query
    try:
        code = wintypes.DWORD()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == _STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


class ExperimentBusyError(ExperimentError):
    """Another live process holds the experiment's lock; the message names it and says what to do."""


@dataclass(frozen=True)
class LockOwner:
    """What the lock file says about the process that holds it."""

    pid: int
    host: str
    started: float
    command: str
    token: str

    @classmethod
    def of_this_process(cls, command: str | None = None) -> LockOwner:
        words = command if command is not None else " ".join([Path(sys.executable).name, *sys.argv])
        return cls(os.getpid(), socket.gethostname(), time.time(), words[:500], secrets.token_hex(8))

    @classmethod
    def parse(cls, text: str) -> LockOwner | None:
        """The owner the text describes, or None when it is not a lock file's content."""
        try:
            data = json.loads(text)
            return cls(
                int(data["pid"]), str(data["host"]), float(data["started"]), str(data["command"]), str(data["token"])
            )
        except (ValueError, TypeError, KeyError):
            return None

    def to_text(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    def alive(self) -> bool:
        """False only when the owner is surely gone: on this host, with no process of its pid."""
        return self.host != socket.gethostname() or pid_alive(self.pid)

    def describe(self) -> str:
        where = "" if self.host == socket.gethostname() else f" on host {self.host}"
        started = time.strftime("%H:%M", time.localtime(self.started))
        if time.time() - self.started > 86400:
            started = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.started))
        return f"process {self.pid}{where} (started {started}, {self.command})"


class ExperimentLock:
    """The lock of the experiment folder ``root``; use :func:`experiment_lock` rather than this directly."""

    def __init__(self, root: str | Path, *, command: str | None = None, log_line: Callable[[str], None] | None = None):
        self.paths = ExperimentPaths(Path(root).absolute())
        self.owner = LockOwner.of_this_process(command)
        self.log_line = log_line
        self.owned = False  # True when this object created the file (and must remove it)
        self.inherited = False  # True when a parent process holds it for us
        self._inherited_token = ""
        self._made_root = False  # the folder was made for the lock: removed again if it stays empty

    @property
    def path(self) -> Path:
        return self.paths.lock_file

    @property
    def token(self) -> str:
        """The token of the lock file this object stands for (the parent's, when inherited)."""
        return self._inherited_token if self.inherited else self.owner.token

    def _note(self, line: str) -> None:
        log.info(line)
        if self.log_line is not None:
            self.log_line(line)

    def acquire(self) -> ExperimentLock:
        """Take the lock, taking over a stale one; raises :class:`ExperimentBusyError` when it is held."""
        if not self.paths.root.is_dir():
            self.paths.root.mkdir(parents=True, exist_ok=True)
            self._made_root = True
        for _ in range(5):  # each round either creates the file or judges the one found
            if self._create():
                self.owned = True
                remove_stale_temp_files(self.paths, older_than=self.owner.started - 1.0, log=self._note)
                return self
            text = self._read()
            if text is None:  # released between our two calls
                continue
            holder = LockOwner.parse(text)
            if holder is not None and holder.token == os.environ.get(INHERITED_LOCK_ENV):
                self.inherited, self._inherited_token = True, holder.token
                return self
            if holder is not None and holder.alive():
                self._forget_root()
                raise self._busy(holder)
            if holder is None and self._age() < _YOUNG_GARBAGE_SECONDS:
                time.sleep(0.2)  # its owner may be writing it right now
                continue
            self._take_over(text, holder)
        self._forget_root()
        raise ExperimentBusyError(
            f"Could not take the lock '{self.path}' of experiment '{self.paths.name}': another process is "
            "taking it, or the file is damaged. Try again in a few seconds."
        )

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.owner.to_text())
        except BaseException:  # a half-written lock would block the experiment for a while
            self.path.unlink(missing_ok=True)
            raise
        return True

    def _read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None

    def _age(self) -> float:
        try:
            return time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def _busy(self, holder: LockOwner) -> ExperimentBusyError:
        return ExperimentBusyError(
            f"Experiment '{self.paths.name}' is being trained by {holder.describe()}. Stop it first, or wait. "
            f"(If no such process runs any more, delete '{self.path}'.)"
        )

    def _take_over(self, seen: str, holder: LockOwner | None) -> None:
        """Move the stale lock aside; when another process replaced it meanwhile, put that one back."""
        aside = self.path.with_name(f"{self.path.name}.stale-{self.owner.token}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        moved = aside.read_text(encoding="utf-8", errors="replace")
        if moved != seen:  # a live lock taken a moment ago: restore it unless yet another one exists
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        what = f"of {holder.describe()}, which is no longer running" if holder else "that could not be read"
        self._note(f"took over the stale lock {what}: '{self.path}'")

    def release(self) -> None:
        """Remove the lock file if this process created it and it is still ours."""
        if not self.owned or os.getpid() != self.owner.pid:
            return  # a forked worker must not release its parent's lock
        self.owned = False
        text = self._read()
        holder = LockOwner.parse(text) if text is not None else None
        if holder is not None and holder.token == self.owner.token:
            self.path.unlink(missing_ok=True)
        self._forget_root()

    def _forget_root(self) -> None:
        """Remove the experiment folder again when it was made only for the lock and nothing was written."""
        if self._made_root:
            self._made_root = False
            with contextlib.suppress(OSError):
                self.paths.root.rmdir()

    def child_env(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """``env`` (default ``os.environ``) for a child process that works under this lock."""
        return {**(os.environ if env is None else env), INHERITED_LOCK_ENV: self.token}


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into SystemExit (so ``finally`` blocks run) unless something already handles it."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def experiment_lock(
    root: str | Path, *, command: str | None = None, log: Callable[[str], None] | None = None
) -> Iterator[ExperimentLock]:
    """Hold the lock of experiment folder ``root`` for the ``with`` block (see the module docstring)."""
    key = Path(root).absolute()
    held = _HELD.get({})
    if key in held:
        yield held[key]
        return
    lock = ExperimentLock(key, command=command, log_line=log)
    with _sigterm_unwinds():
        lock.acquire()
        reset = _HELD.set({**held, key: lock})
        try:
            yield lock
        finally:
            _HELD.reset(reset)
            lock.release()


def held_lock(root: str | Path) -> ExperimentLock | None:
    """The lock of ``root`` this thread holds through :func:`experiment_lock`, or None."""
    return _HELD.get({}).get(Path(root).absolute())
