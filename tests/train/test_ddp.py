"""Two CPU processes under torchrun (gloo): they train together and rank 0 alone writes one set of files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch

from infer import load_voice
from infer.checkpoints import read_checkpoint
from tests.conftest import REPO_ROOT
from tests.train.conftest import TINY_DISC, make_experiment
from train.distributed import StopRequest, any_rank, init_distributed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_processes_train_and_save_once(tmp_path):
    exp = make_experiment(tmp_path, seconds=(0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.45), mute=False)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "train.fit_main",
        "--exp-dir",
        str(exp),
        "--epochs",
        "2",
        "--save-every",
        "1",
        "--num-workers",
        "0",
        "--device",
        "cpu",
        "--weights-dir",
        str(tmp_path / "weights"),
        "--disc-divisors",
        str(TINY_DISC[0]),
        str(TINY_DISC[1]),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, timeout=240)
    assert run.returncode == 0, run.stderr.decode()[-4000:]
    # 8 items, 2 ranks × batch 2: two steps per epoch on each rank; one G/D pair per save, from rank 0
    assert sorted(p.name for p in exp.glob("[GD]_*.pth")) == ["D_2.pth", "D_4.pth", "G_2.pth", "G_4.pth"]
    assert read_checkpoint(exp / "G_4.pth").iteration == 2
    log = (exp / "train.log").read_text()
    assert log.count("Training on cpu (2 process(es), fp32)") == 1 and log.count("====> Epoch: 2") == 1
    records = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["epoch"]) for r in records] == [("step", 1), ("step", 1), ("epoch", 1)] + [
        ("step", 2),
        ("step", 2),
        ("epoch", 2),
    ]
    assert load_voice(tmp_path / "weights" / "tiny.pth").info == "2epoch"
    assert len(list(tmp_path.glob("weights/*.pth"))) == 1


def test_single_process_without_torchrun(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.distributed, ctx.is_main) == (0, 1, False, True)
    assert ctx.device == torch.device("cpu")
    assert any_rank(True, ctx) and not any_rank(False, ctx)


def test_stop_request_sources(tmp_path):
    flag = []
    stop_file = tmp_path / "STOP"
    with StopRequest(stop_file, cancel=lambda: bool(flag)) as stop:
        assert stop.reason() is None
        stop_file.touch()
        assert "stop file" in stop.reason()
    with StopRequest(tmp_path / "none", cancel=lambda: bool(flag)) as stop:
        flag.append(1)
        assert stop.reason() == "cancel requested"
    import signal

    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.reason() == "signal SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back
