"""Loading ``.pth``/``.pt`` files without ever running code from them.

Every model file we read (small models, G_/D_ checkpoints, ``hubert_base.pt``,
``rmvpe.pt``, pitch-model weights) goes through :func:`load_torch_file`.  It
uses ``torch.load(weights_only=True)``, whose unpickler only builds tensors and
plain containers.  A file that names any other Python global is refused before
anything is unpickled, except for the few names in ``stand_ins``: those are
mapped to harmless classes of ours that only store their state (fairseq
pickles its ``Dictionary`` into ``hubert_base.pt``, for example).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch


class ModelFileError(ValueError):
    """A model file is missing, unreadable, unsafe or of the wrong kind.

    The message names the file and says what to do.
    """


class UnsafeModelFileError(ModelFileError):
    """The file's pickle refers to Python code we will not run."""

    def __init__(self, path: Path, names: list[str]) -> None:
        self.path = path
        self.names = names
        shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
        super().__init__(
            f"Refused to load '{path}': it contains references to Python code ({shown}) "
            "that would run while loading. Real RVC model files never need that. "
            "Delete the file and get the model from a source you trust."
        )


class StateOnly:
    """Stand-in for a pickled class: keeps the pickled state as attributes, runs nothing."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["state"] = state


class FairseqDictionary(StateOnly):
    """Stand-in for ``fairseq.data.dictionary.Dictionary`` (has ``symbols``)."""

    def __len__(self) -> int:
        return len(getattr(self, "symbols", []))


class ArgparseNamespace(StateOnly):
    """Stand-in for ``argparse.Namespace`` (old fairseq checkpoints store ``args``)."""


DEFAULT_STAND_INS: Mapping[str, type] = {
    "fairseq.data.dictionary.Dictionary": FairseqDictionary,
    "argparse.Namespace": ArgparseNamespace,
}


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise ModelFileError(f"Model file not found: '{path}'. Check the path and file name.")
    if path.is_dir():
        raise ModelFileError(f"'{path}' is a folder, not a model file.")
    if path.stat().st_size == 0:
        raise ModelFileError(f"Model file '{path}' is empty (0 bytes); download or copy it again.")


def _unsafe_globals(path: Path) -> list[str]:
    """Globals the file's pickle names beyond torch's weights-only allowlist."""
    if not zipfile.is_zipfile(path):
        return []  # legacy (pre-1.6) format: torch's weights_only unpickler still guards it
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # a damaged archive; torch.load below reports it
        return []


def load_torch_file(
    path: str | Path,
    *,
    stand_ins: Mapping[str, type] = DEFAULT_STAND_INS,
    map_location: str | torch.device = "cpu",
) -> Any:
    """Load a torch-saved file safely; raises :class:`ModelFileError` on any problem.

    ``stand_ins`` maps fully qualified class names that the file may contain
    to harmless replacement classes.  Any other non-allowlisted global makes
    the load fail with :class:`UnsafeModelFileError` before unpickling starts.
    """
    path = Path(path)
    _check_readable(path)
    unknown = [name for name in _unsafe_globals(path) if name not in stand_ins]
    if unknown:
        raise UnsafeModelFileError(path, sorted(unknown))
    allowed = [(cls, name) for name, cls in stand_ins.items()]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        names = re.findall(r"GLOBAL ([\w.]+)", str(exc))
        if names:
            raise UnsafeModelFileError(path, sorted(set(names))) from exc
        raise _not_a_model_file(path, exc) from exc
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile) as exc:
        raise _not_a_model_file(path, exc) from exc


def _not_a_model_file(path: Path, exc: BaseException) -> ModelFileError:
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    detail = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
    return ModelFileError(
        f"Could not read '{path}': it is not a valid PyTorch model file ({detail}). "
        "It may be damaged or incomplete; download or copy it again."
    )
