"""The Train tab without a browser: form → requests → argv, the watching handlers, stop, resume, view helpers."""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pytest
import torch

from config import Settings
from infer.checkpoints import TrainCheckpoint, write_checkpoint
from train.__main__ import build_parser
from train.cli.args import request_from_args
from train.commands import REQUESTS, RequestError
from train.experiment import ExperimentError, ExperimentPaths
from webui.context import UIContext
from webui.jobs import JobRunner, JobState, JobStep
from webui.train_handlers import TrainHandlers
from webui.train_requests import (
    TrainForm,
    clean_path,
    extract_request,
    fit_request,
    job_steps,
    one_click_requests,
    preprocess_request,
    resume_point,
)
from webui.train_view import loss_table, pretrained_defaults, progress_html, status_text


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env(
        root=tmp_path,
        assets_dir=tmp_path / "assets",
        weights_dir=tmp_path / "weights",
        logs_dir=tmp_path / "logs",
        device="cpu",
        input_dirs=(Path("/data"),),  # the form's dataset folder, as with --allow-path /data
    )


def form(**changes) -> TrainForm:
    base = TrainForm(
        name="alice",
        sample_rate="32k",
        use_f0=True,
        version="v2",
        processes=2,
        dataset='  "/data/my voice"  ',
        f0_method="pm",
        epochs=30,
        save_every=3,
        batch_size=2,
        num_workers=0,
        disc_divisors="16 32",
        config_overrides='{"model": {"n_layers": 1}}',
    )
    return replace(base, **changes)


def parsed_back(request):
    """What ``python -m train`` makes of the request's command line (the shown command must mean the same)."""
    words = shlex.split(request.command_line())
    assert words[:3] == [sys.executable, "-m", "train"]
    return request_from_args(REQUESTS[words[3]], build_parser().parse_args(words[3:]))


def test_requests_carry_the_form_and_round_trip_through_the_cli(settings):
    pre, ext, fit = (build(form(), settings) for build in (preprocess_request, extract_request, fit_request))
    assert str(pre.dataset) == "/data/my voice" and pre.processes == 2 and pre.sample_rate == "32k"
    assert pre.logs_dir == settings.logs_dir and pre.config_overrides == {"model": {"n_layers": 1}}
    assert ext.f0_method == "pm" and ext.device == "cpu" and ext.assets_dir == settings.assets_dir
    assert (fit.epochs, fit.save_every, fit.batch_size, fit.disc_divisors) == (30, 3, 2, (16, 32))
    assert fit.pretrained_g == "" and fit.weights_dir == settings.weights_dir and fit.num_workers == 0
    for request in (pre, ext, fit):
        assert parsed_back(request) == request
    steps = job_steps([pre, fit])
    assert [s.label for s in steps] == ["preprocess", "fit"]
    assert steps[0].argv[-1] == "--json-progress" and "--json-progress" not in steps[0].command_line


def test_one_click_runs_every_step_with_the_same_settings(settings):
    requests = one_click_requests(form(gpus="", f0_method="rmvpe_gpu"), settings)
    assert [r.STEP for r in requests] == ["preprocess", "check", "extract", "fit", "index"]
    assert requests[2].f0_method == "rmvpe"  # GPU RMVPE without GPU ids: RMVPE on the chosen device
    assert requests[3].epochs == 30 and requests[4].version == "v2"
    assert {r.name for r in requests} == {"alice"} and all(r.logs_dir == settings.logs_dir for r in requests)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dataset": "  "}, "folder of recordings"),
        ({"config_overrides": "{nope"}, "not valid JSON"),
        ({"disc_divisors": "16"}, "two whole numbers"),
        ({"name": "../escape"}, "not a folder name"),
    ],
)
def test_bad_form_values_are_refused_with_a_message(settings, changes, message):
    with pytest.raises(RequestError, match=message):
        one_click_requests(form(**changes), settings)


def test_clean_path_strips_pasted_quotes_and_marks():
    assert clean_path(' \u202a"C:\\Users\\me\\data"\n') == "C:\\Users\\me\\data"
    assert clean_path(None) == ""


def test_pretrained_defaults_point_at_present_files_only(tmp_path):
    assert pretrained_defaults(tmp_path, "v2", "40k", True) == ("", "")
    g = tmp_path / "pretrained_v2" / "f0G40k.pth"
    g.parent.mkdir()
    g.write_bytes(b"x")
    assert pretrained_defaults(tmp_path, "v2", "40k", True) == (str(g), "")
    assert pretrained_defaults(tmp_path, "v1", "40k", True) == ("", "")


def test_loss_table_bins_long_runs():
    records = [{"kind": "step", "step": i, "loss/g/total": float(i), "loss/d/total": 1.0} for i in range(1000)]
    records.append({"kind": "epoch", "epoch": 1, "step": 999, "loss/g/total": 5.0})
    table = loss_table(records, points=100)
    g = table[table["loss"] == "loss/g/total"]
    assert len(g) == 100 and set(table["loss"]) == {"loss/g/total", "loss/d/total"}
    assert g["value"].iloc[0] == pytest.approx(4.5) and g["step"].iloc[-1] == 999  # means of 10 steps
    assert loss_table([]).empty


def py_step(label: str, code: str) -> JobStep:
    return JobStep(label, (sys.executable, "-c", textwrap.dedent(code)), f"python -m train {label}")


def wait_until(job, timeout=20.0):
    assert job.wait(timeout), "job did not end"


@pytest.fixture
def handlers(settings):
    runner = JobRunner(kill_after=2.0)
    yield TrainHandlers(UIContext(settings, lambda key: key, cache=None), runner)
    runner.shutdown()


def test_tick_shows_progress_log_and_losses_then_stops_the_timer(handlers, settings):
    paths = ExperimentPaths(settings.logs_dir / "alice")
    paths.root.mkdir(parents=True)
    job = handlers.runner.start(
        [
            py_step(
                "fit",
                f"""
        import json, sys
        with open({str(paths.metrics)!r}, "a") as out:
            for step in range(4):
                out.write(json.dumps({{"kind": "step", "step": step, "loss/g/total": 9.0 - step}}) + "\\n")
        print(json.dumps({{"progress": 0.5, "message": "epoch 2/4, step 8"}}))
        print("error: something went wrong", file=sys.stderr)
        sys.exit(1)
    """,
            )
        ],
        key="alice",
        metrics_file=paths.metrics,
        stop_file=paths.stop_file,
    )
    wait_until(job)
    session = {"job": job.job_id, "plot": -1, "commands": "$ python -m train fit"}
    session, message, progress, log, plot, timer = handlers.tick(session)
    assert "error: something went wrong" in log and 'data-state="failed"' in progress
    assert list(plot["value"]) == [9.0, 8.0, 7.0, 6.0] and session["plot"] == 4
    assert message.startswith("$ python -m train fit\n") and "train.ended_failed" in message
    assert timer.active is False
    again = handlers.tick(session)
    assert isinstance(again[4], type(gr.skip())) and isinstance(again[1], type(gr.skip()))  # nothing new


def test_attach_finds_the_running_job_and_the_stored_settings(handlers, settings):
    from tests.train.test_data import tiny_config

    paths = ExperimentPaths(settings.logs_dir / "bob")
    paths.root.mkdir(parents=True)
    tiny_config("bob", version="v1", sample_rate=48000).save(paths.config)
    job = handlers.runner.start(
        [py_step("fit", "import time; print('busy', flush=True); time.sleep(30)")], key="bob", stop_file=paths.stop_file
    )
    result = handlers.attach(" bob ", None)
    session, timer, stored = result[0], result[5], result[6:]
    assert session["job"] == job.job_id and timer.active is True
    assert stored == ("48k", "v1", True)
    assert handlers.stop("bob", None).startswith("train.stopping")  # the running job of that experiment
    wait_until(job)
    assert job.snapshot().state is JobState.STOPPED and paths.stop_file.exists()


def test_stop_without_a_job_leaves_a_stop_file_or_says_there_is_nothing(handlers, settings):
    (settings.logs_dir / "carol").mkdir(parents=True)
    assert handlers.stop("carol", None).startswith("train.stop_file_written")
    assert (settings.logs_dir / "carol" / "STOP").exists()
    with pytest.raises(gr.Error, match="train.nothing_to_stop"):
        handlers.stop("nobody", None)


def test_stop_and_attach_refuse_names_that_leave_the_logs_folder(handlers, settings):
    outside = settings.logs_dir.parent / "elsewhere"
    outside.mkdir(parents=True)
    with pytest.raises(gr.Error, match="not a folder name"):
        handlers.stop("../elsewhere", None)
    assert not (outside / "STOP").exists()
    result = handlers.attach("../elsewhere", None)
    assert result[0] is None and result[5].active is False  # nothing watched, no error on leaving the box


def _pair(folder, step, epoch):
    folder.mkdir(parents=True, exist_ok=True)
    for role in "GD":
        write_checkpoint(TrainCheckpoint({"x": torch.zeros(1)}, iteration=epoch), folder / f"{role}_{step}.pth")


def test_resume_needs_a_checkpoint_and_more_epochs(settings):
    paths = ExperimentPaths(settings.logs_dir / "dave")
    with pytest.raises(ExperimentError, match="no G_"):
        resume_point(paths, 20)
    _pair(paths.root, 21, 7)
    assert resume_point(paths, 20) == 7
    with pytest.raises(ExperimentError, match="above 7"):
        resume_point(paths, 7)


def test_start_turns_library_errors_into_gradio_errors(handlers, settings):
    values = list(vars(form(name="erin")).values())
    with pytest.raises(gr.Error, match="no G_"):
        handlers.start("resume", None, *values)
    with pytest.raises(gr.Error, match="folder of recordings"):
        handlers.start("all", None, *list(vars(form(dataset="")).values()))
    started = handlers.start("index", None, *values)
    session, message = started[0], started[1]
    job = handlers.runner.get(session["job"])
    assert "python -m train index --name erin" in message.replace(sys.executable, "python")
    with pytest.raises(gr.Error, match="busy"):
        handlers.start("index", None, *values)  # one job per experiment
    wait_until(job, timeout=120)
    assert job.snapshot().state is JobState.FAILED  # no features to index in an empty experiment


def test_progress_and_status_texts():
    from webui.jobs import JobSnapshot

    snap = JobSnapshot("1", "alice", JobState.RUNNING, 1, 4, "fit", 0.5, 0.375, "epoch 2/4", None, "", 3.0)
    html = progress_html(snap, lambda key: f"<{key}>")
    assert 'value="0.3750"' in html and "2/4 &lt;train.step_fit&gt; — epoch 2/4 (38%)" in html
    failed = replace(snap, state=JobState.FAILED, returncode=1, log="x\nerror: no dataset\ny")
    text = status_text(failed, lambda key, **v: json.dumps([key, v], sort_keys=True))
    assert json.loads(text) == [
        "train.ended_failed",
        {"code": 1, "error": "error: no dataset", "step": '["train.step_fit", {}]'},
    ]
