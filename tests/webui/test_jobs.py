"""The job runner with tiny ``python -c`` children: output, progress, steps, stop, kill, conflicts."""

from __future__ import annotations

import os
import sys
import textwrap
import time

import pytest

from webui.job_output import MetricsReader, parse_progress_line
from webui.jobs import JobConflictError, JobRunner, JobState, JobStep


def py(label: str, code: str, *args: str) -> JobStep:
    return JobStep(label, (sys.executable, "-c", textwrap.dedent(code), *args), f"python -c <{label}>")


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@pytest.fixture
def runner():
    runner = JobRunner(kill_after=2.0)
    yield runner
    runner.shutdown()


def test_output_and_json_progress(runner):
    job = runner.start(
        [
            py(
                "talk",
                """
        import json, sys
        print("hello from stdout")
        print("warning on stderr", file=sys.stderr)
        print(json.dumps({"progress": 0.5, "message": "half way"}))
        print(json.dumps({"kind": "other"}))
        print("caf\\u00e9 \\u65e5\\u672c")
    """,
            )
        ]
    )
    assert job.wait(20)
    snap = job.snapshot()
    assert snap.state is JobState.FINISHED and snap.returncode == 0
    assert snap.message == "half way" and snap.progress == 1.0 and snap.overall == 1.0
    lines = job.log_tail().splitlines()
    assert lines[0] == "$ python -c <talk>"
    assert "hello from stdout" in lines and "warning on stderr" in lines and "café 日本" in lines
    assert '{"kind": "other"}' in lines  # JSON without progress keys stays in the log
    assert not any('"progress"' in line for line in lines)


def test_steps_run_in_order_and_stop_at_the_first_failure(runner):
    job = runner.start(
        [
            py("one", "print('step one')"),
            py("two", "import sys; print('step two'); sys.exit(3)"),
            py("three", "print('step three')"),
        ]
    )
    assert job.wait(20)
    snap = job.snapshot()
    assert snap.state is JobState.FAILED and snap.returncode == 3
    assert (snap.step_index, snap.step_count, snap.step_label) == (1, 3, "two")
    log = job.log_tail()
    assert log.index("step one") < log.index("step two")
    assert "step three" not in log and "[two] exited with status 3" in log


def test_arguments_are_not_interpreted_by_a_shell(runner, tmp_path):
    tricky = f"a b; touch {tmp_path / 'pwned'} & $HOME \"q\" 'x' %PATH% 米津"
    job = runner.start([py("echo", "import sys; print(repr(sys.argv[1]))", tricky)])
    assert job.wait(20) and job.snapshot().state is JobState.FINISHED
    assert repr(tricky) in job.log_tail().splitlines()
    assert not (tmp_path / "pwned").exists()


def test_a_missing_program_fails_with_a_message(runner, tmp_path):
    job = runner.start([JobStep("ghost", (str(tmp_path / "no-such-program"),))])
    assert job.wait(20)
    assert job.snapshot().state is JobState.FAILED
    assert "could not start" in job.log_tail()


def test_stop_file_makes_the_child_finish_cleanly(runner, tmp_path):
    stop_file = tmp_path / "exp" / "STOP"
    job = runner.start(
        [
            py(
                "train",
                """
        import os, signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only the stop file may end this one
        print("training", flush=True)
        while not os.path.exists(sys.argv[1]):
            time.sleep(0.05)
        print("saved checkpoint", flush=True)
    """,
                str(stop_file),
            ),
            py("index", "print('index built')"),
        ],
        key="exp",
        stop_file=stop_file,
    )
    wait_for(lambda: "training" in job.log_tail())
    assert job.stop() is True
    assert job.wait(20)
    snap = job.snapshot()
    assert snap.state is JobState.STOPPED and snap.returncode == 0
    assert "saved checkpoint" in snap.log and "index built" not in snap.log  # later steps are skipped
    assert job.stop() is False  # already over


def test_a_step_that_reports_a_stop_ends_the_job(runner):
    # a stop file written from elsewhere (the CLI, another server) ends the step cleanly with "stopped": true
    job = runner.start(
        [
            py(
                "fit",
                """
        import json
        print(json.dumps({"progress": 1.0, "message": "Training stopped", "step": "fit", "stopped": True}))
    """,
            ),
            py("index", "print('index built')"),
        ]
    )
    assert job.wait(20)
    assert job.snapshot().state is JobState.STOPPED and "index built" not in job.log_tail()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_stop_sends_sigterm(runner):
    job = runner.start(
        [
            py(
                "loop",
                """
        import signal, sys, time
        def on_term(*_):
            print("got SIGTERM", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        print("ready", flush=True)
        while True:
            time.sleep(0.05)
    """,
            )
        ]
    )
    wait_for(lambda: "ready" in job.log_tail())
    job.stop()
    assert job.wait(10)
    assert "got SIGTERM" in job.log_tail() and job.snapshot().state is JobState.STOPPED


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_stubborn_process_group_is_killed_after_the_timeout(runner, tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    job = runner.start(
        [
            py(
                "stubborn",
                """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c",
                                  "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        open(sys.argv[1], "w").write(str(child.pid))
        print("ready", flush=True)
        time.sleep(600)
    """,
                str(pid_file),
            )
        ]
    )
    wait_for(lambda: "ready" in job.log_tail())
    grandchild = int(pid_file.read_text())
    started = time.monotonic()
    job.stop()
    assert job.wait(15)
    assert 1.5 < time.monotonic() - started < 12  # kill_after=2 s
    assert job.snapshot().state is JobState.STOPPED and "killed" in job.log_tail()
    wait_for(lambda: not _alive(grandchild), timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie awaiting its (dead) parent's reaper is dead
        return stat.read().split()[2] != "Z"


def test_one_running_job_per_key(runner):
    first = runner.start([py("slow", "import time; time.sleep(30)")], key="alice")
    with pytest.raises(JobConflictError, match="alice"):
        runner.start([py("other", "pass")], key="alice")
    other = runner.start([py("bob", "pass")], key="bob")
    assert runner.running_for("alice") is first and runner.get(first.job_id) is first
    first.stop()
    assert first.wait(10) and other.wait(10)
    again = runner.start([py("again", "pass")], key="alice")
    assert runner.latest_for("alice") is again and runner.running_for("bob") is None
    assert again.wait(10)


def test_a_supervisor_failure_ends_the_job_and_frees_its_key(runner, monkeypatch):
    def broken(line):
        raise RuntimeError("parser bug")

    monkeypatch.setattr("webui.jobs.parse_progress_line", broken)
    job = runner.start([py("talk", "import time; print('hello', flush=True); time.sleep(30)")], key="alice")
    assert job.wait(10), "the job must end, not hang as running"
    snapshot = job.snapshot()
    assert snapshot.state is JobState.FAILED and "supervisor failed: RuntimeError: parser bug" in snapshot.log
    assert runner.running_for("alice") is None


def test_shutdown_stops_everything():
    runner = JobRunner(kill_after=1.0)
    jobs = [runner.start([py(f"s{i}", "import time; time.sleep(60)")]) for i in range(2)]
    runner.shutdown(timeout=10)
    assert all(not job.running for job in jobs)


def test_job_metrics_follow_the_file(runner, tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    job = runner.start(
        [
            py(
                "m",
                """
        import json, sys, time
        with open(sys.argv[1], "a") as out:
            for step in range(3):
                out.write(json.dumps({"kind": "step", "step": step, "loss/g/total": 10.0 - step}) + "\\n")
                out.flush()
    """,
                str(metrics),
            )
        ],
        metrics_file=metrics,
    )
    assert job.wait(20)
    assert [r["step"] for r in job.metrics()] == [0, 1, 2]


def test_metrics_reader_is_incremental_and_survives_rewrites(tmp_path):
    path = tmp_path / "metrics.jsonl"
    reader = MetricsReader(path)
    assert reader.read() == []
    path.write_text('{"step": 0}\n{"step": 1}\n{"st')
    assert [r["step"] for r in reader.read()] == [0, 1]  # the half line waits
    with open(path, "a") as out:
        out.write('ep": 2}\nnot json\n[1, 2]\n')
    assert [r["step"] for r in reader.read()] == [0, 1, 2]
    replacement = tmp_path / "new.jsonl"
    replacement.write_text('{"step": 0}\n{"step": 1}\n{"step": 5}\n')
    os.replace(replacement, path)  # a resumed run trims the file atomically (new inode, maybe same size)
    assert [r["step"] for r in reader.read()] == [0, 1, 5]
    path.unlink()
    assert reader.read() == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"progress": 0.25, "message": "epoch 5/20"}', (0.25, "epoch 5/20")),
        ('{"progress": 2}', (1.0, None)),
        ('{"progress": 1.0, "message": "done", "stopped": true}', (1.0, "done")),
        ('  {"message": "extracting"}  ', (None, "extracting")),
        ('{"progress": true}', None),
        ('{"progress": "half"}', None),
        ('{"loss": 1}', None),
        ("[0.5]", None),
        ("{not json}", None),
        ("plain text", None),
    ],
)
def test_parse_progress_line(line, expected):
    update = parse_progress_line(line)
    assert (None if update is None else (update.progress, update.message)) == expected


def test_steps_need_argument_lists():
    with pytest.raises(ValueError):
        JobStep("empty", ())
    with pytest.raises(ValueError):
        JobStep("shell string", ("echo hi", 3))  # type: ignore[arg-type]
