"""Running a ``tools/`` script from a checkout whose packages are not installed in this Python.

RVC users run ``python tools/infer_cli.py`` with any Python that has the
dependencies; ``sys.path[0]`` is then ``tools/`` and ``import infer`` fails.
Instead of changing ``sys.path``, :func:`run_from_checkout` runs the same
script again in a child process with the project folder at the front of
``PYTHONPATH`` (the working folder stays, so relative paths mean what the user
typed) and exits with the child's status.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_RERUN_MARK = "RVC_STUDIO_TOOLS_RERUN"  # set in the child: a second failure is an error, not another child


def run_from_checkout(script: str) -> None:
    """Return when the project's packages import; else run ``script`` again with them importable and exit."""
    if importlib.util.find_spec("infer") is not None:
        return
    if os.environ.get(_RERUN_MARK):
        sys.exit(
            f"error: the RVC Studio packages are not in '{PROJECT_ROOT}' (no infer/ folder?); "
            "run the script from a complete checkout, or install it with `pip install -e .`."
        )
    env = dict(os.environ, **{_RERUN_MARK: "1"})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    child = subprocess.Popen([sys.executable, str(Path(script).resolve()), *sys.argv[1:]], env=env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the child too; it ends itself cleanly
    code = child.wait()
    sys.exit(128 - code if code < 0 else code)  # killed by signal N: the shell's 128 + N
