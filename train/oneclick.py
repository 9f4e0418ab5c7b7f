"""One-click training (``python -m train all``): every step in order, as RVC's "One-click training".

preprocess → check the dataset → extract pitch (with pitch guidance) and
features → write the filelist and train → build the index.  Before each step
its equivalent command is announced (``callbacks.say``), after it its result.
A stop request ends the run after the step in progress has stopped cleanly;
an error in any step ends it with that step's error.  The index either
appears or the run fails saying why (RVC could finish "successfully" without one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from train.commands import AllRequest, StepRequest
from train.dataset_check import DatasetCheck
from train.fit_step import FitOutcome, run_fit
from train.steps import (
    Callbacks,
    ExtractOutcome,
    IndexOutcome,
    PreprocessOutcome,
    holds_experiment_lock,
    run_check,
    run_extract,
    run_index,
    run_preprocess,
)

# Share of the whole run each step's progress covers (training dominates).
STEP_WEIGHTS = {"preprocess": 0.08, "check": 0.02, "extract": 0.15, "fit": 0.7, "index": 0.05}
STEP_TITLES = {
    "preprocess": "process data",
    "check": "check the dataset",
    "extract": "extract pitch and features",
    "fit": "write the filelist and train",
    "index": "build the feature index",
}
RUNNERS: dict[str, Callable[[Any, Callbacks], Any]] = {
    "preprocess": run_preprocess,
    "check": run_check,
    "extract": run_extract,
    "fit": run_fit,
    "index": run_index,
}


@dataclass
class AllOutcome:
    """Each step's outcome (None for steps not reached); ``stopped_in`` names the step a stop request ended."""

    preprocess: PreprocessOutcome | None = None
    check: DatasetCheck | None = None
    extract: ExtractOutcome | None = None
    fit: FitOutcome | None = None
    index: IndexOutcome | None = None
    stopped_in: str | None = None
    commands: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)

    @property
    def cancelled(self) -> bool:
        return self.stopped_in is not None

    def text(self) -> str:
        if self.stopped_in is not None:
            steps = "\n".join(f"$ {command}" for command in self.remaining)
            return f"Stopped during '{self.stopped_in}'. To go on from there, run:\n{steps}"
        lines = ["All steps are done."]
        if self.fit is not None and self.fit.final_model is not None:
            lines.append(f"Voice model: {self.fit.final_model}")
        if self.index is not None and self.index.report is not None:
            lines.append(f"Index: {self.index.report.added}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        data: dict[str, Any] = {"stopped_in": self.stopped_in, "commands": self.commands, "remaining": self.remaining}
        for name in RUNNERS:
            outcome = getattr(self, name)
            data[name] = (
                None if outcome is None else (outcome.to_json() if hasattr(outcome, "to_json") else asdict(outcome))
            )
        return data


def _stopped(outcome: Any) -> bool:
    return bool(getattr(outcome, "cancelled", False))


def _resume_commands(steps: list[StepRequest]) -> list[str]:
    """The commands that finish a stopped run: from the stopped step on (extraction and training resume);
    a stopped preprocessing has to run again whole, and the dataset check is part of it."""
    return [step.command_line() for step in steps if step.STEP != "check"]


@holds_experiment_lock
def run_all(request: AllRequest, callbacks: Callbacks | None = None) -> AllOutcome:
    """Run every step of ``request`` in order; progress covers the whole run (messages start with the step)."""
    callbacks = callbacks or Callbacks()
    steps: list[StepRequest] = request.steps()
    outcome = AllOutcome()
    start = 0.0
    for number, step in enumerate(steps, start=1):
        name = step.STEP
        if callbacks.cancelled():
            outcome.stopped_in = name
            outcome.remaining = _resume_commands(steps[number - 1 :])
            break
        command = step.command_line()
        outcome.commands.append(command)
        callbacks.tell(f"Step {number}/{len(steps)}: {STEP_TITLES[name]}\n$ {command}")
        end = start + STEP_WEIGHTS[name]
        result = RUNNERS[name](step, callbacks.within(start, end, f"{name}: "))
        setattr(outcome, name, result)
        callbacks.tell(result.text())
        if _stopped(result):
            outcome.stopped_in = name
            outcome.remaining = _resume_commands(steps[number - 1 :])
            break
        start = end
    if outcome.stopped_in is None and callbacks.progress is not None:
        callbacks.progress(1.0, "all steps done")
    return outcome
