"""Launching training under torchrun: the argument list, and the parent's handling of the child's output."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from train.fit_main import build_parser, fit_main_args, options_from_args
from train.launch import TrainingProcessError, run_torchrun, torchrun_argv
from train.loop import FitOptions

CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    stop = Path(sys.argv[1])
    print("log line from rank 0", flush=True)
    for step in range(1, 200):
        if stop.exists():
            print(json.dumps({"progress": 1.0, "message": "stopped", "result": {"stopped": True, "epoch": step}}))
            sys.exit(0)
        print(json.dumps({"progress": min(step / 4, 1.0), "message": f"step {step}"}), flush=True)
        if step == 4 and sys.argv[2] == "finish":
            print(json.dumps({"progress": 1.0, "message": "done", "result": {"stopped": False, "epoch": 2}}))
            sys.exit(0)
        if step == 2 and sys.argv[2] == "fail":
            print("Traceback: something broke", flush=True)
            sys.exit(3)
        time.sleep(0.05)
""")


def test_fit_main_flags_describe_the_same_options():
    options = FitOptions(
        total_epochs=7,
        save_every=2,
        save_latest_only=True,
        save_small_model_every_save=True,
        pretrained_g="/p/G 1.pth",
        batch_size=3,
        device="cpu",
        precision="fp32",
        num_workers=0,
        log_interval=5,
        weights_dir=Path("/w ü"),
        seed=9,
        threads=1,
        discriminator_divisors=(16, 32),
    )
    args = build_parser().parse_args(fit_main_args("/logs/alice", options))
    assert args.exp_dir == "/logs/alice"
    again = options_from_args(args)
    assert again == FitOptions(**{**options.__dict__, "weights_dir": "/w ü"})
    argv = torchrun_argv("/logs/alice", options, 2, port=29999)
    assert argv[:11] == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        "29999",
        "-m",
        "train.fit_main",
    ]
    assert argv[-1] == "--json-progress"


def _run(tmp_path, mode: str, cancel=None, progress=None):
    stop = tmp_path / "exp" / "STOP"
    progress, lines = [] if progress is None else progress, []
    result = run_torchrun(
        [sys.executable, "-c", CHILD, str(stop), mode],
        stop_file=stop,
        progress=lambda f, m: progress.append((f, m)),
        log=lines.append,
        cancel=cancel,
    )
    return result, progress, lines, stop


def test_progress_lines_are_passed_on_and_the_result_returned(tmp_path):
    result, progress, lines, _ = _run(tmp_path, "finish")
    assert result == {"stopped": False, "epoch": 2}
    assert progress[:4] == [(0.25, "step 1"), (0.5, "step 2"), (0.75, "step 3"), (1.0, "step 4")]
    assert lines == ["log line from rank 0"]


def test_a_stop_request_writes_the_stop_file_for_every_rank(tmp_path):
    progress = []
    result, _, lines, stop = _run(tmp_path, "run", cancel=lambda: len(progress) >= 3, progress=progress)
    assert stop.exists() and result["stopped"] is True and 3 <= result["epoch"] < 50
    assert any("stop requested" in line for line in lines)


def test_a_failed_child_is_an_error_after_its_messages(tmp_path):
    with pytest.raises(TrainingProcessError, match="exit code 3"):
        _run(tmp_path, "fail")
