"""``python -m train``: help, exit codes, one-line errors, refusals, JSON progress, stop files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.helpers import run_python
from tests.train.conftest import tone, write_audio
from train.__main__ import main
from train.commands import REQUESTS, AllRequest
from train.oneclick import run_all
from train.steps import Callbacks

STEP_FLAGS = {
    "preprocess": "--dataset",
    "check": "--logs-dir",
    "extract": "--f0-method",
    "fit": "--pretrained-g",
    "index": "--assets-dir",
    "all": "--save-every",
    "reuse": "--from",
}


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def dataset(tmp_path):
    """Ten seconds of tone (three pieces) in a folder whose name has a space and an umlaut."""
    folder = tmp_path / "my dätaset"
    write_audio(folder / "take 1.wav", tone(10.0))
    return folder


def _preprocess(tmp_path, dataset, *extra: str) -> int:
    return main(
        [
            "preprocess",
            "--name",
            "alice",
            "--dataset",
            str(dataset),
            "--logs-dir",
            str(tmp_path / "logs"),
            "--processes",
            "1",
            *extra,
        ]
    )


@pytest.mark.parametrize("step", sorted(REQUESTS))
def test_help_for_every_step(step, capsys):
    with pytest.raises(SystemExit) as info:
        main([step, "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert STEP_FLAGS[step] in out and "--json-progress" in out
    assert ("--to" if step == "reuse" else "--name") in out


def test_module_entry_point_runs():
    run = run_python(["-m", "train", "--help"], env=dict(os.environ), timeout=120)
    assert run.returncode == 0, run.stderr
    assert all(step in run.stdout for step in REQUESTS)


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit"])  # --name is required
    assert info.value.code == 2
    assert main(["fit", "--name", "alice", "--gpus", "0;1"]) == 2
    assert "--gpus" in _error_line(capsys.readouterr().err)


def test_missing_dataset_folder_is_one_error_line_and_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "no such folder"
    assert main(["preprocess", "--name", "alice", "--dataset", str(missing), "--logs-dir", str(tmp_path / "logs")]) == 1
    assert str(missing) in _error_line(capsys.readouterr().err)
    assert not (tmp_path / "logs" / "alice").exists()


def test_dataset_of_only_silence_is_refused(tmp_path, capsys):
    silence = tmp_path / "silence"
    write_audio(silence / "quiet.wav", np.zeros(5 * 40000, np.float32))
    request = AllRequest(name="alice", dataset=silence, logs_dir=tmp_path / "logs", processes=1, f0_method="pm")
    assert main(request.argv()[3:]) == 1
    line = _error_line(capsys.readouterr().err)
    assert "No usable audio" in line and "quiet.wav: silent file" in line and "All audio was dropped" in line
    assert not (tmp_path / "logs" / "alice" / "config.json").exists()  # nothing set up: any rate may follow


def test_changed_sample_rate_is_refused_before_anything_changes(tmp_path, dataset, capsys):
    assert _preprocess(tmp_path, dataset, "--sr", "32k") == 0
    gt = tmp_path / "logs" / "alice" / "0_gt_wavs"
    before = {p.name: p.stat().st_mtime_ns for p in gt.iterdir()}
    assert len(before) == 3 and "3 pieces written" in capsys.readouterr().out
    assert _preprocess(tmp_path, dataset, "--sr", "48k") == 1
    line = _error_line(capsys.readouterr().err)
    assert "v2 32k with pitch guidance" in line and "v2 48k" in line and "reuse --from alice --to NEW_NAME" in line
    assert {p.name: p.stat().st_mtime_ns for p in gt.iterdir()} == before
    assert main(["extract", "--name", "alice", "--logs-dir", str(tmp_path / "logs"), "--no-f0"]) == 1
    assert "without pitch guidance" in _error_line(capsys.readouterr().err)
    assert _preprocess(tmp_path, dataset) == 0  # no --sr: the experiment's own rate


def test_check_json_progress_and_a_stale_stop_file(tmp_path, dataset, capsys):
    exp = tmp_path / "logs" / "alice"
    exp.mkdir(parents=True)
    (exp / "STOP").touch()  # left by an earlier stop: must not cancel this run
    assert _preprocess(tmp_path, dataset, "--json-progress") == 0
    out = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in out]  # stdout holds JSON lines only
    assert [r["progress"] for r in records[:-1]] == [1.0] and records[-1]["step"] == "preprocess"
    result = records[-1]["result"]
    assert records[-1]["stopped"] is False and result["report"]["pieces"] == 3 and not result["report"]["cancelled"]
    assert result["check"]["pieces"] == 3 and not (exp / "STOP").exists()
    assert main(["check", "--name", "alice", "--logs-dir", str(tmp_path / "logs")]) == 0
    assert "0.2 min of usable audio in 3 pieces" in capsys.readouterr().out
    assert main(["check", "--name", "bob", "--logs-dir", str(tmp_path / "logs")]) == 1
    assert "Experiment 'bob' does not exist" in _error_line(capsys.readouterr().err)


def test_later_steps_say_what_is_missing(tmp_path, dataset, capsys):
    assert _preprocess(tmp_path, dataset) == 0
    capsys.readouterr()
    logs = ["--name", "alice", "--logs-dir", str(tmp_path / "logs"), "--assets-dir", str(tmp_path / "assets")]
    assert main(["extract", *logs]) == 1
    assert "Content encoder not found" in _error_line(capsys.readouterr().err)
    assert main(["fit", *logs, "--hubert", str(tmp_path / "none.pt")]) == 1
    assert "mute features" in _error_line(capsys.readouterr().err)
    assert main(["index", *logs]) == 1
    assert "run feature extraction first" in _error_line(capsys.readouterr().err)


def test_a_stop_request_ends_all_after_the_running_step(tmp_path, dataset):
    request = AllRequest(name="alice", dataset=dataset, logs_dir=tmp_path / "logs", processes=1, f0_method="pm")
    said = []
    outcome = run_all(request, Callbacks(say=said.append, cancel=lambda: len(said) >= 2))
    assert outcome.preprocess is not None and outcome.check is None and outcome.stopped_in == "check"
    assert [cmd.split(" -m train ")[1].split()[0] for cmd in outcome.remaining] == ["extract", "fit", "index"]
    assert said[0].startswith("Step 1/5: process data\n$ ") and "Stopped during 'check'" in outcome.text()
