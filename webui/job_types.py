"""The values the job runner hands out: job states, steps and snapshots (no processes here)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class JobState(str, Enum):
    """Where a job is: still running, or how it ended (its ``value`` names the texts ``train.state_<value>``)."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"


class JobConflictError(RuntimeError):
    """A job for this key (an experiment) is already running."""


@dataclass(frozen=True)
class JobStep:
    """One process of a job: a label for the UI, the argument list and its equivalent command line."""

    label: str
    argv: tuple[str, ...]
    command_line: str = ""

    def __post_init__(self) -> None:
        if not self.argv or not all(isinstance(a, str) for a in self.argv):
            raise ValueError(f"step {self.label!r}: argv must be a non-empty list of strings")


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent view of a job for one UI refresh.

    ``progress`` is the running step's fraction 0..1 (None while unknown);
    ``overall`` counts finished steps too.
    """

    job_id: str
    key: str | None
    state: JobState
    step_index: int
    step_count: int
    step_label: str
    progress: float | None
    overall: float
    message: str
    returncode: int | None
    log: str
    elapsed: float

    @property
    def running(self) -> bool:
        return self.state is JobState.RUNNING
