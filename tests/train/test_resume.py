"""Resume, stop requests, SIGKILL recovery, pretrained G/D and continuing from another experiment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from infer.checkpoints import TrainCheckpoint, read_checkpoint, write_checkpoint
from infer.models.config import tiny_config as tiny_synth_config
from infer.models.discriminators import build_discriminator
from infer.models.synthesizer import Synthesizer
from infer.safe_load import ModelFileError
from tests.conftest import REPO_ROOT
from tests.train.conftest import TINY_DISC, TINY_MODEL, make_experiment, tiny_options
from train.checkpointing import PretrainedMismatchError, find_latest_pair, load_pretrained, load_tolerant
from train.experiment import ExperimentConfig
from train.loop import fit


def _records(exp: Path, kind: str) -> list[dict]:
    lines = (exp / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def _fit_command(exp: Path, epochs: int, weights: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "train.fit_main",
        "--exp-dir",
        str(exp),
        "--epochs",
        str(epochs),
        "--save-every",
        "1",
        "--num-workers",
        "0",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--weights-dir",
        str(weights),
        "--disc-divisors",
        str(TINY_DISC[0]),
        str(TINY_DISC[1]),
    ]


def _start(command: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for_step_in_epoch(proc: subprocess.Popen, exp: Path, epoch: int, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode()
        if (exp / "metrics.jsonl").exists() and any(r["epoch"] >= epoch for r in _records(exp, "step")):
            return
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"training did not reach epoch {epoch} in time")


def test_continue_to_more_epochs_starts_after_the_saved_one(tmp_path):
    exp = make_experiment(tmp_path, seconds=(0.9, 1.0), mute=False)  # one step per epoch
    first = fit(exp, tiny_options(tmp_path, total_epochs=2))
    second = fit(exp, tiny_options(tmp_path, total_epochs=3))
    assert (first.epoch, first.global_step) == (2, 2)
    assert (second.start_epoch, second.epoch, second.global_step) == (3, 3, 3)  # RVC would retrain epoch 2
    assert [r["epoch"] for r in _records(exp, "epoch")] == [1, 2, 3]
    assert [r["step"] for r in _records(exp, "step")] == list(range(3))
    lr = [r["lr"] for r in _records(exp, "epoch")]
    assert lr == pytest.approx([1e-4, 1e-4 * 0.999875, 1e-4 * 0.999875**2])
    assert "Loaded checkpoint" in (exp / "train.log").read_text()
    third = fit(exp, tiny_options(tmp_path, total_epochs=3))  # nothing left: no training, voice written again
    assert (third.start_epoch, third.epoch, third.global_step) == (4, 3, 3) and third.final_model.is_file()


@pytest.mark.parametrize("how", ["stop_file", "cancel"])
def test_stop_request_saves_the_epoch_reached(tmp_path, how):
    exp = make_experiment(tmp_path, seconds=(0.9, 1.0, 1.1, 1.2), mute=False)  # two steps per epoch
    steps = []

    def progress(fraction, message):
        steps.append(message)
        if how == "stop_file" and len(steps) == 3:
            (exp / "STOP").touch()

    result = fit(
        exp,
        tiny_options(tmp_path, total_epochs=5),
        progress=progress,
        cancel=(lambda: len(steps) >= 3) if how == "cancel" else None,
    )
    assert result.stopped and result.epoch == 2 and result.global_step == 3  # stopped after step 1 of epoch 2
    assert result.final_model is None and not (exp / "STOP").exists()
    pair = find_latest_pair(exp)
    assert pair.epoch == 2 and read_checkpoint(pair.generator).extra["rvc_studio"]["global_step"] == 3
    assert "stopped at epoch 2, step 3" in (exp / "train.log").read_text()
    resumed = fit(exp, tiny_options(tmp_path, total_epochs=3))
    assert (resumed.start_epoch, resumed.epoch, resumed.stopped) == (3, 3, False)


def test_sigterm_ends_cleanly_with_a_checkpoint(tmp_path):
    exp = make_experiment(tmp_path, seconds=(0.9, 1.0, 1.1, 1.2), mute=False)
    proc = _start(_fit_command(exp, 50, tmp_path / "weights"))
    _wait_for_step_in_epoch(proc, exp, 2)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, output
    log = (exp / "train.log").read_text()
    assert "(signal SIGTERM" in log
    reached = int(log.split("stopped at epoch ")[1].split(",")[0])
    assert reached >= 2 and find_latest_pair(exp).epoch == reached
    assert not (tmp_path / "weights" / "tiny.pth").exists()


def test_sigkill_mid_epoch_resumes_from_the_last_save(tmp_path):
    exp = make_experiment(tmp_path, seconds=(0.9, 1.0, 1.1), mute=False, batch_size=1)  # three steps per epoch
    proc = _start(_fit_command(exp, 3, tmp_path / "weights"))
    _wait_for_step_in_epoch(proc, exp, 2)
    proc.kill()  # SIGKILL: no handler runs
    proc.wait(timeout=30)
    pair = find_latest_pair(exp)
    assert pair is not None and pair.epoch >= 1
    assert read_checkpoint(pair.generator).iteration == read_checkpoint(pair.discriminator).iteration == pair.epoch
    rerun = subprocess.run(
        _fit_command(exp, 3, tmp_path / "weights"),
        cwd=REPO_ROOT,
        capture_output=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert read_checkpoint(find_latest_pair(exp).generator).iteration == 3
    assert [r["epoch"] for r in _records(exp, "epoch")] == [1, 2, 3]  # each epoch trained (and logged) once
    assert [r["step"] for r in _records(exp, "step")] == list(range(9))
    assert (tmp_path / "weights" / "tiny.pth").is_file()
    assert not list(exp.glob(".*.tmp"))


def _write_pretrained(folder: Path, config, divisors=TINY_DISC) -> tuple[Path, Path]:
    torch.manual_seed(11)
    g = Synthesizer.from_config(config)
    d = build_discriminator(
        "v2" if config.feature_dim != 256 else "v1", channel_divisor_s=divisors[0], channel_divisor_p=divisors[1]
    )
    folder.mkdir(parents=True, exist_ok=True)
    write_checkpoint(TrainCheckpoint(g.state_dict()), folder / "f0G32k.pth")
    write_checkpoint(TrainCheckpoint(d.state_dict()), folder / "f0D32k.pth")
    return folder / "f0G32k.pth", folder / "f0D32k.pth"


def test_pretrained_weights_are_the_starting_point(tmp_path):
    exp = make_experiment(tmp_path, seconds=(0.9, 1.0), mute=False)
    config = ExperimentConfig.load(exp / "config.json")
    pre_g, pre_d = _write_pretrained(tmp_path / "pretrained", config.model)
    result = fit(exp, tiny_options(tmp_path, total_epochs=1, pretrained_g=pre_g, pretrained_d=pre_d))
    assert f"loaded pretrained {pre_g}" in (exp / "train.log").read_text()
    trained = read_checkpoint(result.checkpoints[-1].generator).model
    start = read_checkpoint(pre_g).model
    fresh = Synthesizer.from_config(config.model).state_dict()
    key = "dec.conv_pre.weight"
    assert (trained[key] - start[key]).abs().max() < 1e-3 < (fresh[key] - start[key]).abs().max()


def test_pretrained_mismatches_are_explained(tmp_path):
    exp = make_experiment(tmp_path, seconds=(0.9,), mute=False)
    config = ExperimentConfig.load(exp / "config.json")
    g = Synthesizer.from_config(config.model)
    d = build_discriminator("v2", channel_divisor_s=TINY_DISC[0], channel_divisor_p=TINY_DISC[1])
    cases = [
        (tiny_synth_config("v2", 32000, True, **dict(TINY_MODEL, feature_dim=12)), "12-dim content features"),
        (tiny_synth_config("v2", 32000, False, **TINY_MODEL), "without pitch guidance"),
        (tiny_synth_config("v2", 40000, True, **TINY_MODEL), "another sample rate or version"),
    ]
    for other, reason in cases:
        path = _write_pretrained(tmp_path / reason.split()[0], other)[0]
        with pytest.raises(PretrainedMismatchError, match=reason) as info:
            load_pretrained(g, path, "G", config)
        assert str(path) in str(info.value) and "pretrained_v2" in str(info.value)
    v1_d = build_discriminator("v1", channel_divisor_s=TINY_DISC[0], channel_divisor_p=TINY_DISC[1])
    write_checkpoint(TrainCheckpoint(v1_d.state_dict()), tmp_path / "D_v1.pth")
    with pytest.raises(PretrainedMismatchError, match="another version"):
        load_pretrained(d, tmp_path / "D_v1.pth", "D", config)
    pre_g, pre_d = _write_pretrained(tmp_path / "ok", config.model)
    with pytest.raises(PretrainedMismatchError, match="Swap"):
        load_pretrained(g, pre_d, "G", config)
    with pytest.raises(ModelFileError, match="not found"):
        fit(exp, tiny_options(tmp_path, pretrained_g=tmp_path / "nope.pth"))
    with pytest.raises(PretrainedMismatchError):
        fit(exp, tiny_options(tmp_path, pretrained_g=tmp_path / "without" / "f0G32k.pth"))
    assert not list(exp.glob("G_*.pth"))


def test_new_experiment_continues_from_another_ones_checkpoints(tmp_path):
    """FAQ Q15: start a new experiment (more data) from an old experiment's G/D."""
    old = make_experiment(tmp_path, "old", seconds=(0.9, 1.0), mute=False)
    fit(old, tiny_options(tmp_path, total_epochs=1, save_latest_only=True))
    new = make_experiment(tmp_path, "new", seconds=(0.9, 1.0, 1.1, 1.2), mute=False, seed=3)
    result = fit(
        new,
        tiny_options(tmp_path, total_epochs=1, pretrained_g=old / "G_2333333.pth", pretrained_d=old / "D_2333333.pth"),
    )
    assert result.start_epoch == 1 and read_checkpoint(result.checkpoints[0].generator).iteration == 1
    before = read_checkpoint(old / "G_2333333.pth").model["flow.flows.0.pre.weight"]
    after = read_checkpoint(result.checkpoints[0].generator).model["flow.flows.0.pre.weight"]
    assert (after - before).abs().max() < 1e-3


def _fake_checkpoint(path: Path, epoch: int, model: dict | None = None) -> None:
    torch.save(
        {"model": model or {"enc_p.x": torch.zeros(1)}, "iteration": epoch, "optimizer": None, "learning_rate": 1e-4},
        path,
    )


def test_latest_pair_is_chosen_by_stored_epoch(tmp_path):
    exp = tmp_path / "logs" / "run2024"  # digits in the name fooled RVC's ordering
    exp.mkdir(parents=True)
    d_model = {"discriminators.0.x": torch.zeros(1)}
    _fake_checkpoint(exp / "G_2333333.pth", 3)
    _fake_checkpoint(exp / "D_2333333.pth", 3, d_model)
    _fake_checkpoint(exp / "G_500.pth", 7)
    _fake_checkpoint(exp / "D_500.pth", 7, d_model)
    _fake_checkpoint(exp / "G_900.pth", 9)  # its D was never written: not a pair
    (exp / "G_950.pth").write_bytes(b"garbage")
    _fake_checkpoint(exp / "D_950.pth", 10, d_model)
    pair = find_latest_pair(exp)
    assert (pair.generator.name, pair.discriminator.name, pair.epoch) == ("G_500.pth", "D_500.pth", 7)
    _fake_checkpoint(exp / "G_2333333.pth", 12)  # a kill between the G and D writes
    assert find_latest_pair(exp).epoch == 7
    _fake_checkpoint(exp / "D_2333333.pth", 11, d_model)
    assert find_latest_pair(exp).epoch == 11
    assert find_latest_pair(tmp_path) is None


def test_tolerant_resume_keeps_fresh_weights_where_shapes_differ():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    saved = {"0.weight": torch.ones(3, 2), "0.bias": torch.ones(5), "extra": torch.zeros(1)}
    fresh_bias = model[0].bias.detach().clone()
    messages = []
    kept = load_tolerant(model, saved, messages.append)
    assert torch.equal(model[0].weight, torch.ones(3, 2)) and torch.equal(model[0].bias, fresh_bias)
    assert kept == ["0.bias", "1.weight", "1.bias"]
    assert "shape-0.bias-mismatch|need-(3,)|get-(5,)" in messages and "1.weight is not in the checkpoint" in messages
