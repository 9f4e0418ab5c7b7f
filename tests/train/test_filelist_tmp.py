"""Temporary files a killed run left (``.filelist.txt.<random>.tmp`` and the like) go at the next locked step."""

from __future__ import annotations

import os
import time

from tests.train.conftest import TINY_DISC, TINY_MODEL, make_experiment
from train.commands import FitRequest
from train.experiment import ExperimentPaths, remove_stale_temp_files
from train.fit_step import run_fit
from train.steps import Callbacks


def _leftover(path, age: float = 3600.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("half-written")
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_the_next_fit_removes_the_temp_files_of_a_killed_run(tmp_path, tiny_hubert):
    exp = make_experiment(tmp_path, mute=False, model_overrides=dict(TINY_MODEL, feature_dim=32))
    paths = ExperimentPaths(exp)
    leftovers = [
        _leftover(exp / ".filelist.txt.k2j4h1x.tmp"),
        _leftover(exp / ".G_2333333.pth.a8d0q.tmp"),
        _leftover(paths.features("v2") / ".0_0.npy.zz91.tmp"),
    ]
    kept = [exp / "notes.tmp", paths.gt_wavs / "0_0.wav"]
    kept[0].write_text("not one of ours: no leading dot")
    request = FitRequest(
        name="tiny",
        logs_dir=tmp_path / "logs",
        hubert=tiny_hubert,
        pretrained_g="",
        pretrained_d="",
        epochs=1,
        device="cpu",
        num_workers=0,
        threads=1,
        weights_dir=tmp_path / "weights",
        disc_divisors=TINY_DISC,
    )
    lines: list[str] = []
    outcome = run_fit(request, Callbacks(log=lines.append))
    assert outcome.result["epoch"] == 1 and (exp / "filelist.txt").is_file()
    assert not any(path.exists() for path in leftovers)
    assert all(path.exists() for path in kept)
    assert not list(exp.rglob(".*.tmp"))
    assert any("removed 3 temporary file(s) left by an interrupted run" in line for line in lines), lines


def test_only_files_older_than_the_lock_are_removed(tmp_path):
    paths = ExperimentPaths(tmp_path / "alice")
    old = _leftover(paths.root / ".filelist.txt.old1.tmp")
    fresh = _leftover(paths.root / ".config.json.new2.tmp", age=0.0)
    folder = _leftover(paths.root / ".reuse-in-progress" / "x")  # not a temp file of ours
    removed = remove_stale_temp_files(paths, older_than=time.time() - 60)
    assert removed == [old] and fresh.exists() and folder.exists()
