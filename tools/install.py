"""Install RVC Studio's dependencies into the running Python (normally ``.venv``).

    python tools/install.py          # what the UI needs
    python tools/install.py --dev    # plus the test tools

go-web.sh / go-web.bat and tools/run_tests.sh call this; it does nothing when
the requirement files have not changed since the last successful run.
Only the standard library is used here, since nothing else is installed yet.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUPPORTED = ((3, 10), (3, 13))
CUDA_INDEX = "https://download.pytorch.org/whl/cu128"


def torch_spec() -> list[str]:
    """pip arguments for the torch build that suits this machine.

    ``RVC_TORCH_SPEC`` overrides (e.g. ``"torch==2.13.0 --index-url https://..."``).
    PyPI's Windows wheels are CPU-only, so Windows with an NVIDIA driver gets the
    CUDA index; Linux wheels on PyPI already include CUDA.
    """
    override = os.environ.get("RVC_TORCH_SPEC")
    if override:
        return override.split()
    if platform.system() == "Windows" and shutil.which("nvidia-smi"):
        return ["torch", "--index-url", CUDA_INDEX]
    return ["torch==2.13.0"]


def requirement_files(dev: bool) -> list[Path]:
    names = ["requirements.txt", "requirements-nodeps.txt"] + (["requirements-dev.txt"] if dev else [])
    return [ROOT / name for name in names]


def stamp_value(dev: bool) -> str:
    digest = hashlib.sha256(" ".join(torch_spec()).encode())
    for path in requirement_files(dev) + [ROOT / "pyproject.toml"]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev", action="store_true", help="also install the test tools")
    parser.add_argument("--force", action="store_true", help="reinstall even if nothing changed")
    args = parser.parse_args(argv)

    version = sys.version_info[:2]
    if not SUPPORTED[0] <= version <= SUPPORTED[1]:
        print(
            f"RVC Studio needs Python 3.10 to 3.13; this is {platform.python_version()}. "
            "Install a supported Python and run again.",
            file=sys.stderr,
        )
        return 2
    stamp = Path(sys.prefix) / f".rvc-studio-install{'-dev' if args.dev else ''}"
    wanted = stamp_value(args.dev)
    if not args.force and stamp.exists() and stamp.read_text().strip() == wanted:
        print("Dependencies are up to date.")
        return 0
    try:
        if importlib.util.find_spec("torch") is None:
            pip(*torch_spec())
        pip("-r", "requirements.txt", *(["-r", "requirements-dev.txt"] if args.dev else []))
        pip("--no-deps", "-r", "requirements-nodeps.txt")
        pip("--no-deps", "--no-build-isolation", "-e", ".")
    except subprocess.CalledProcessError as exc:
        print(
            f"Installing dependencies failed (exit code {exc.returncode}). Check the internet connection "
            "(or the proxy settings) and run the same command again; pip resumes where it stopped.",
            file=sys.stderr,
        )
        return exc.returncode or 1
    stamp.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
