"""The Train tab's event handlers: widget values → requests → jobs, and the timer that watches them.

One :class:`TrainHandlers` per server holds the job runner.  Per-browser state
is a small dict in ``gr.State`` (``job``: the watched job id, ``plot``: how
many metric records the plot shows, ``commands``: the message window's text),
so several people can train and watch at once.  Nothing here blocks a worker
for longer than it takes to start a process or read a log.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from infer.safe_load import ModelFileError
from train.commands import RequestError, StepRequest
from train.experiment import ExperimentError
from webui.context import UIContext
from webui.errors import user_error
from webui.job_output import MetricsReader
from webui.jobs import Job, JobConflictError, JobRunner
from webui.tab_texts import say
from webui.train_requests import (
    TrainForm,
    experiment_paths,
    extract_request,
    fit_request,
    index_request,
    job_steps,
    one_click_requests,
    preprocess_request,
    resume_point,
    stored_settings,
)
from webui.train_view import loss_table, progress_html, status_text

STEP_BUILDERS: dict[str, Callable[[TrainForm, Any], list[StepRequest]]] = {
    "preprocess": lambda form, settings: [preprocess_request(form, settings)],
    "extract": lambda form, settings: [extract_request(form, settings)],
    "fit": lambda form, settings: [fit_request(form, settings)],
    "index": lambda form, settings: [index_request(form, settings)],
    "all": one_click_requests,
}
LOG_LINES = 300
Session = dict[str, Any]


class TrainHandlers:
    """The Train tab's behaviour; each public method is one Gradio event handler.

    Handlers that watch return, in order: session, message, progress HTML,
    log text, loss-plot table (or ``gr.skip()``), timer update.
    """

    def __init__(self, ctx: UIContext, runner: JobRunner) -> None:
        self.ctx = ctx
        self.runner = runner
        self._readers: dict[Path, MetricsReader] = {}
        self._readers_lock = threading.Lock()

    # ---- starting ----

    def start(self, step: str, session: Session | None, *values: Any, request: gr.Request | None = None) -> tuple:
        """Start ``step`` (``preprocess``, ``extract``, ``fit``, ``index``, ``all`` or ``resume``) for the form."""
        form = TrainForm.from_values(*values)
        try:
            paths = experiment_paths(form, self.ctx.settings)
            note = ""
            if step == "resume":
                epoch = resume_point(paths, int(form.epochs))
                note = say(self.ctx, "train.resuming", request, epoch=epoch, epochs=int(form.epochs)) + "\n"
            requests = STEP_BUILDERS["fit" if step == "resume" else step](form, self.ctx.settings)
            job = self.runner.start(
                job_steps(requests), key=form.experiment_name, stop_file=paths.stop_file, metrics_file=paths.metrics
            )  # the server's folder: typed paths mean the same
        except (RequestError, ExperimentError, ModelFileError, JobConflictError, ValueError, OSError) as exc:
            raise user_error(str(exc)) from exc
        commands = (
            note + say(self.ctx, "train.started", request) + "\n" + "\n".join(f"$ {s.command_line}" for s in job.steps)
        )
        session = {"job": job.job_id, "plot": -1, "commands": commands}
        return self._watch(session, job, request, message=commands)

    # ---- watching ----

    def tick(self, session: Session | None, request: gr.Request | None = None) -> tuple:
        """The timer: fresh progress, log and plot of the watched job; the timer stops when the job has ended."""
        job = self.runner.get((session or {}).get("job"))
        if job is None:
            return session, gr.skip(), self._progress(None, request), gr.skip(), gr.skip(), gr.Timer(active=False)
        return self._watch(dict(session), job, request)

    def attach(self, name: str, session: Session | None, request: gr.Request | None = None) -> tuple:
        """Watch the running (or last) job of experiment ``name`` and show its losses so far (page reload, other tab).

        Also returns the experiment's stored sample rate, version and pitch setting, or ``gr.skip()`` for a new one.
        """
        name = (name or "").strip()
        stored = skipped = (gr.skip(), gr.skip(), gr.skip())
        try:
            paths = experiment_paths(TrainForm(name=name), self.ctx.settings)
        except RequestError:  # empty or not a folder name: nothing to show (starting a step says why)
            return (
                session,
                gr.skip(),
                self._progress(None, request),
                gr.skip(),
                gr.skip(),
                gr.Timer(active=False),
                *skipped,
            )
        config = stored_settings(paths)
        if config is not None:
            stored = (config.tag, config.version, config.use_f0)
        job = self.runner.running_for(name) or self.runner.latest_for(name)
        if job is None:
            metrics = self._metrics(paths.metrics)
            return (
                {"job": None, "plot": len(metrics), "commands": ""},
                gr.skip(),
                self._progress(None, request),
                gr.skip(),
                loss_table(metrics),
                gr.Timer(active=False),
                *stored,
            )
        session = {"job": job.job_id, "plot": -1, "commands": "\n".join(f"$ {s.command_line}" for s in job.steps)}
        return (*self._watch(session, job, request, message=session["commands"]), *stored)

    def _watch(self, session: Session, job: Job, request: gr.Request | None, message: Any = None) -> tuple:
        snapshot = job.snapshot(LOG_LINES)
        plot: Any = gr.skip()
        metrics = self._metrics(job.metrics_file) if job.metrics_file else []
        if len(metrics) != session.get("plot"):
            session["plot"], plot = len(metrics), loss_table(metrics)
        if message is None:
            message = gr.skip()
        if not snapshot.running and not session.get("ended"):
            session["ended"] = True
            ended = status_text(snapshot, lambda key, **v: say(self.ctx, key, request, **v))
            message = "\n".join(filter(None, [session.get("commands", ""), ended]))
        return (
            session,
            message,
            self._progress(snapshot, request),
            snapshot.log,
            plot,
            gr.Timer(active=snapshot.running),
        )

    def _progress(self, snapshot, request) -> str:
        return progress_html(snapshot, lambda key: say(self.ctx, key, request))

    def _metrics(self, path: Path) -> list[dict]:
        with self._readers_lock:
            reader = self._readers.setdefault(Path(path), MetricsReader(path))
        return reader.read()

    # ---- stopping ----

    def stop(self, name: str, session: Session | None, request: gr.Request | None = None) -> str:
        """Stop the watched job, else the running job of experiment ``name``, else leave a stop file for it.

        The stop file also stops a training started from a terminal (it saves a checkpoint first).
        """
        job = self.runner.get((session or {}).get("job"))
        if job is None or not job.running:
            job = self.runner.running_for((name or "").strip())
        if job is not None and job.stop():
            return say(self.ctx, "train.stopping", request, seconds=int(self.runner.kill_after))
        try:
            paths = experiment_paths(TrainForm(name=name), self.ctx.settings)
        except RequestError as exc:
            raise user_error(str(exc)) from exc
        if not paths.root.is_dir():
            raise user_error(say(self.ctx, "train.nothing_to_stop", request, name=paths.name))
        paths.stop_file.touch()
        return say(self.ctx, "train.stop_file_written", request, path=str(paths.stop_file))
