"""How a request field appears on the command line: :class:`FlagSpec`, declared once in the field's metadata.

Also the helpers the requests share: GPU lists in RVC's "0-1" form, and
quoting an argument list for a terminal.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field
from typing import Any

_GPU_LIST = re.compile(r"^\d+([-,]\d+)*$")


class RequestError(ValueError):
    """A request field has a value the step cannot use; the message names the flag."""


@dataclass(frozen=True)
class FlagSpec:
    """How a request field appears on the command line.

    ``kind``: ``value`` (``--opt VALUE``), ``switch`` (``--opt`` sets True),
    ``toggle`` (``--opt`` / ``--no-opt``, None = not given), ``json`` (a JSON
    object), ``pair`` (two integers).  ``minimum`` bounds integers.
    """

    option: str
    help: str
    kind: str = "value"
    type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    aliases: tuple[str, ...] = ()
    minimum: int | None = None
    pattern: str | None = None
    group: str = "experiment"

    def render(self, value: Any) -> list[str]:
        """The command-line words for ``value``."""
        if self.kind == "switch":
            return [self.option] if value else []
        if self.kind == "toggle":
            return [self.option if value else f"--no-{self.option[2:]}"]
        if self.kind == "json":
            return [self.option, json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)]
        if self.kind == "pair":
            return [self.option, *(str(int(v)) for v in value)]
        return [self.option, str(value)]


def option_field(option: str, help: str, default: Any = MISSING, **spec: Any) -> Any:
    """A dataclass field whose metadata holds its :class:`FlagSpec` (``default`` as in ``dataclasses.field``)."""
    return field(default=default, metadata={"flag": FlagSpec(option, help, **spec)})


def gpu_ids(text: str | None) -> tuple[int, ...]:
    """RVC's GPU list ("0-1", also "0,1") as ids; "" or None is no GPU.  Raises RequestError."""
    text = (text or "").strip()
    if not text:
        return ()
    if not _GPU_LIST.match(text):
        raise RequestError(f"--gpus {text!r} is not a GPU list; write the ids joined by '-', such as 0-1.")
    return tuple(int(part) for part in re.split("[-,]", text))


def quote_command(argv: list[str], *, windows: bool | None = None) -> str:
    """``argv`` as one line to paste into a terminal: bash quoting, or Windows' (cmd/PowerShell) on ``nt``."""
    if windows is None:
        windows = os.name == "nt"
    return subprocess.list2cmdline(argv) if windows else shlex.join(argv)


def field_default(item: Field) -> Any:
    """A dataclass field's default value (made by its factory if it has one), or ``MISSING``."""
    if item.default is not MISSING:
        return item.default
    if item.default_factory is not MISSING:
        return item.default_factory()
    return MISSING
