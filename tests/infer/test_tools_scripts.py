"""RVC's ``tools/`` scripts run by path with a Python that has the dependencies but not the project installed."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SCRIPTS = ("infer_cli.py", "infer_batch_rvc.py")


def _bare_python() -> tuple[str, dict[str, str]]:
    """A Python and an environment where the dependencies import but the project does not.

    The base interpreter of the virtual environment, given the environment's
    site-packages on ``PYTHONPATH``: it does not run the ``.pth`` files there, so
    the editable install of the project is not active (as for an RVC user's Python).
    """
    base = getattr(sys, "_base_executable", sys.executable)
    if sys.prefix == sys.base_prefix:
        pytest.skip("not running in a virtual environment: no Python without the project to test with")
    paths = sysconfig.get_paths()
    site = os.pathsep.join(dict.fromkeys([paths["purelib"], paths["platlib"]]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RVC_STUDIO_")}
    env["PYTHONPATH"] = site
    probe = subprocess.run(
        [base, "-c", "import importlib.util as u, numpy; print(u.find_spec('infer') is None)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(site.split(os.pathsep)[0]),
    )
    if probe.stdout.strip() != "True":
        pytest.skip(f"the base Python cannot stand for one without the project: {probe.stdout}{probe.stderr}")
    return base, env


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_works_from_another_folder_without_the_project_installed(script, tmp_path):
    python, env = _bare_python()
    run = subprocess.run(
        [python, str(REPO_ROOT / "tools" / script), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"usage: {script}") and "--input_path" in run.stdout and "--f0up_key" in run.stdout
    assert "No module named" not in run.stderr


def test_relative_paths_are_read_from_the_users_folder(tmp_path):
    python, env = _bare_python()
    run = subprocess.run(
        [python, os.path.relpath(REPO_ROOT / "tools" / "infer_cli.py", tmp_path)]
        + ["--input_path", "missing.wav", "--opt_path", "out.wav", "--model_name", "voice.pth"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    assert "error:" in run.stderr and "missing.wav" in run.stderr and "No module named" not in run.stderr
    assert not (tmp_path / "out.wav").exists()
