"""The experiment lock (train/lock.py): one writer per experiment, stale locks, release, torchrun, the UI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.train.conftest import TINY_DISC, TINY_MODEL, make_experiment
from train.commands import FitRequest
from train.experiment import ExperimentPaths
from train.fit_step import run_fit
from train.lock import ExperimentBusyError, ExperimentLock, LockOwner, experiment_lock, held_lock, pid_alive


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write_lock(root: Path, *, pid: int, host: str | None = None, age: float = 0.0) -> Path:
    owner = LockOwner(pid, host or socket.gethostname(), time.time() - age, "python -m train fit --name x", "feed")
    path = ExperimentPaths(root).lock_file
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(owner.to_text(), encoding="utf-8")
    return path


def test_the_lock_file_names_its_owner_and_a_second_taker_is_refused(tmp_path):
    root = tmp_path / "logs" / "alice"
    first = ExperimentLock(root, command="python -m train fit --name alice").acquire()
    data = json.loads((root / "experiment.lock").read_text())
    assert data["pid"] == os.getpid() and data["host"] == socket.gethostname()
    assert data["command"] == "python -m train fit --name alice" and abs(data["started"] - time.time()) < 60
    with pytest.raises(ExperimentBusyError) as refused:
        ExperimentLock(root).acquire()
    message = str(refused.value)
    started = time.strftime("%H:%M", time.localtime(data["started"]))
    assert (
        f"Experiment 'alice' is being trained by process {os.getpid()} (started {started}, python -m train fit"
        in message
    )
    assert "Stop it first, or wait." in message and str(root / "experiment.lock") in message
    first.release()
    assert not (root / "experiment.lock").exists()
    ExperimentLock(root).acquire().release()


def test_nested_locks_in_one_thread_share_the_outer_one_and_other_threads_are_refused(tmp_path):
    root = tmp_path / "alice"
    refusals = []

    def other_thread() -> None:
        try:
            with experiment_lock(root):
                pass
        except ExperimentBusyError as exc:
            refusals.append(str(exc))

    with experiment_lock(root) as outer:
        with experiment_lock(root) as inner:
            assert inner is outer and held_lock(root) is outer
        assert (root / "experiment.lock").exists()  # the inner block did not release it
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert len(refusals) == 1 and "is being trained by" in refusals[0]
    assert not (root / "experiment.lock").exists() and held_lock(root) is None


@pytest.mark.parametrize("kind", ["dead pid", "garbage"])
def test_a_stale_lock_is_taken_over_with_a_log_line(tmp_path, kind):
    root = tmp_path / "alice"
    if kind == "dead pid":
        path = _write_lock(root, pid=_dead_pid())
    else:
        path = ExperimentPaths(root).lock_file
        root.mkdir()
        path.write_bytes(b"\x00\xffnot a lock")
        os.utime(path, (time.time() - 60, time.time() - 60))
    lines = []
    with experiment_lock(root, log=lines.append):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert len(lines) == 1 and "took over the stale lock" in lines[0] and str(path) in lines[0]
    assert not path.exists() and not list(root.glob("experiment.lock*"))


def test_a_lock_of_another_host_or_a_live_process_is_respected(tmp_path):
    path = _write_lock(tmp_path / "a", pid=_dead_pid(), host="render-box")
    with pytest.raises(ExperimentBusyError, match="on host render-box"):
        ExperimentLock(tmp_path / "a").acquire()
    assert path.exists()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = _write_lock(tmp_path / "b", pid=sleeper.pid, age=2 * 86400)
        with pytest.raises(ExperimentBusyError, match=f"process {sleeper.pid} \\(started 20"):
            ExperimentLock(tmp_path / "b").acquire()
        assert path.exists() and pid_alive(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not pid_alive(sleeper.pid) and not pid_alive(0)


def test_the_lock_is_released_after_an_exception_in_a_step(tmp_path):
    exp = make_experiment(tmp_path)
    request = FitRequest(name="tiny", logs_dir=tmp_path / "logs", speaker_id=9)  # the tiny model has 4 speakers
    with pytest.raises(ValueError, match="--speaker-id 9 does not exist"):
        run_fit(request)
    assert not (exp / "experiment.lock").exists()
    with pytest.raises(RuntimeError):
        with experiment_lock(exp):
            raise RuntimeError("boom")
    assert not (exp / "experiment.lock").exists()


def test_a_lock_for_a_missing_experiment_leaves_no_folder(tmp_path):
    with experiment_lock(tmp_path / "logs" / "nobody"):
        assert (tmp_path / "logs" / "nobody" / "experiment.lock").exists()
    assert not (tmp_path / "logs" / "nobody").exists()


_HOLDER = """
import sys, time
from train.lock import experiment_lock
with experiment_lock(sys.argv[1], command="holder"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(root: Path, seconds: float, env: dict | None = None) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root), str(seconds)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_lock_is_released_on_sigterm_and_ctrl_c(tmp_path, sig):
    process = _holder(tmp_path / "alice", 60)
    assert process.stdout.readline().strip() == "locked", process.stderr.read()
    assert (tmp_path / "alice" / "experiment.lock").exists()
    process.send_signal(sig)
    process.wait(timeout=30)
    assert process.returncode != 0
    assert not (tmp_path / "alice" / "experiment.lock").exists()


def test_a_child_given_the_lock_env_works_under_its_parents_lock(tmp_path):
    root = tmp_path / "alice"
    with experiment_lock(root) as lock:
        refused = _holder(root, 0)
        _, err = refused.communicate(timeout=60)
        assert refused.returncode == 1 and f"is being trained by process {os.getpid()}" in err
        allowed = _holder(root, 0, env=lock.child_env())
        out, err = allowed.communicate(timeout=60)
        assert allowed.returncode == 0 and out.strip() == "locked", err
        assert json.loads((root / "experiment.lock").read_text())["token"] == lock.token  # still the parent's
    assert not (root / "experiment.lock").exists()


def _fit_flags(tmp_path: Path, hubert: Path, epochs: int) -> list[str]:
    return [
        *("--name", "tiny", "--logs-dir", str(tmp_path / "logs"), "--hubert", str(hubert)),
        *("--pretrained-g", "", "--pretrained-d", "", "--device", "cpu", "--num-workers", "0", "--threads", "1"),
        *("--epochs", str(epochs), "--save-every", "1", "--weights-dir", str(tmp_path / "weights")),
        *("--disc-divisors", str(TINY_DISC[0]), str(TINY_DISC[1])),
    ]


def _steps(exp: Path) -> list[dict]:
    if not (exp / "metrics.jsonl").exists():
        return []
    records = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["kind"] == "step"]


@pytest.mark.slow  # about 20 s: a real training runs while two others are refused
def test_a_second_training_of_the_same_experiment_is_refused_and_the_first_is_intact(tmp_path, tiny_hubert):
    exp = make_experiment(
        tmp_path, seconds=(0.9, 1.0, 1.1, 1.2), mute=False, model_overrides=dict(TINY_MODEL, feature_dim=32)
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.Popen(
        [sys.executable, "-m", "train", "fit", *_fit_flags(tmp_path, tiny_hubert, 50)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while not any(r["epoch"] >= 2 for r in _steps(exp)):
            assert first.poll() is None and time.time() < deadline, first.communicate()[0]
            time.sleep(0.05)
        filelist = (exp / "filelist.txt").read_bytes()
        again = subprocess.run(
            [sys.executable, "-m", "train", "fit", *_fit_flags(tmp_path, tiny_hubert, 50)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        direct = subprocess.run(
            [sys.executable, "-m", "train.fit_main", "--exp-dir", str(exp), "--epochs", "50", "--device", "cpu"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        (exp / "STOP").touch()
        output = first.communicate(timeout=120)[0]
    finally:
        first.kill()
    for refused in (again, direct):
        assert refused.returncode == 1, refused.stderr
        assert f"error: Experiment 'tiny' is being trained by process {first.pid} (started " in refused.stderr
        assert "python -m train fit --name tiny" in refused.stderr and "Stop it first, or wait." in refused.stderr
    assert first.returncode == 0, output
    assert (exp / "filelist.txt").read_bytes() == filelist  # the refused run did not rewrite it
    steps = [r["step"] for r in _steps(exp)]
    assert steps == list(range(len(steps)))  # no line lost or doubled
    assert not (exp / "experiment.lock").exists()


def test_the_web_ui_job_shows_the_refusal_of_a_busy_experiment(tmp_path):
    from webui.jobs import JobRunner, JobState, JobStep

    make_experiment(tmp_path)
    runner = JobRunner(kill_after=2.0)
    argv = (sys.executable, "-m", "train", "index", "--name", "tiny", "--logs-dir", str(tmp_path / "logs"))
    try:
        with experiment_lock(tmp_path / "logs" / "tiny", command="a training started elsewhere"):
            job = runner.start([JobStep("index", argv)], key="tiny", cwd=REPO_ROOT)
            assert job.wait(120)
        snapshot = job.snapshot()
    finally:
        runner.shutdown()
    assert snapshot.state is JobState.FAILED and snapshot.returncode == 1
    assert snapshot.message.startswith(f"Experiment 'tiny' is being trained by process {os.getpid()} (started ")
    assert "a training started elsewhere" in snapshot.message


def _torchrun(exp: Path, weights: Path) -> list[str]:
    from train.launch import torchrun_argv
    from train.loop import FitOptions

    options = FitOptions(
        total_epochs=1, save_every=1, num_workers=0, device="cpu", weights_dir=weights, discriminator_divisors=TINY_DISC
    )
    return torchrun_argv(exp, options, 2)


@pytest.mark.slow
def test_torchrun_ranks_train_under_the_launchers_lock(tmp_path):
    from train.launch import run_torchrun

    exp = make_experiment(tmp_path, seconds=(0.8, 0.9, 1.0, 1.1), mute=False)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with experiment_lock(exp):
        result = run_torchrun(_torchrun(exp, tmp_path / "weights"), stop_file=exp / "STOP", env=env)
        assert (exp / "experiment.lock").exists()
    assert result["epoch"] == 1 and not result["stopped"] and not (exp / "experiment.lock").exists()


def test_torchrun_of_a_busy_experiment_fails_without_hanging(tmp_path):
    exp = make_experiment(tmp_path, mute=False)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with experiment_lock(exp, command="the first training"):
        run = subprocess.run(
            _torchrun(exp, tmp_path / "weights"), cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180
        )
    assert run.returncode != 0
    assert f"Experiment 'tiny' is being trained by process {os.getpid()}" in run.stdout + run.stderr
    assert not list(exp.glob("G_*.pth"))
