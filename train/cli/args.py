"""Each step's argparse parser, built from its request dataclass, and the way back to the request."""

from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, fields
from typing import Any

from infer.cli.common import fatal
from train.commands import StepRequest
from train.flags import FlagSpec, RequestError

GROUP_TITLES = {
    "experiment": "experiment",
    "step 1: data": "step 1: data",
    "step 2: features": "step 2: pitch and features",
    "step 3: training": "step 3: training",
    "devices": "devices",
    "folders": "folders and models",
    "advanced": "advanced",
}


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object such as \'{"model": {"n_layers": 1}}\'')
    return value


def _help(spec: FlagSpec, default: Any) -> str:
    if spec.kind in ("switch", "toggle") or default in (None, MISSING) or "default" in spec.help:
        return spec.help
    shown = " ".join(str(v) for v in default) if isinstance(default, tuple) else default
    return f"{spec.help} (default: {shown})"


def add_request_arguments(parser: argparse.ArgumentParser, cls: type[StepRequest]) -> None:
    """One option per field of ``cls`` that has a :class:`FlagSpec`, grouped as in the Train tab."""
    groups: dict[str, Any] = {}
    for item in fields(cls):
        spec: FlagSpec | None = item.metadata.get("flag")
        if spec is None:
            continue
        group = groups.get(spec.group)
        if group is None:
            group = groups[spec.group] = parser.add_argument_group(GROUP_TITLES.get(spec.group, spec.group))
        default = item.default
        names = (spec.option, *spec.aliases)
        options: dict[str, Any] = {"dest": item.name, "help": _help(spec, default)}
        if spec.kind == "switch":
            group.add_argument(*names, action="store_true", **options)
            continue
        if spec.kind == "toggle":
            group.add_argument(*names, action=argparse.BooleanOptionalAction, default=None, **options)
            continue
        options.update(default=None if default is MISSING else default, required=default is MISSING)
        if spec.kind == "json":
            options.update(type=_json_object, metavar=spec.metavar)
        elif spec.kind == "pair":
            options.update(type=int, nargs=2, metavar=spec.metavar)
        else:
            options.update(type=spec.type, choices=spec.choices, metavar=spec.metavar)
        group.add_argument(*names, **options)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--json-progress`` and ``--debug``, shared by every step."""
    output = parser.add_argument_group("output")
    output.add_argument(
        "--json-progress",
        action="store_true",
        help='print progress as JSON lines on stdout ({"progress": 0.5, "message": ...}), the '
        "last one with the result; other text goes to stderr",
    )
    output.add_argument("--debug", action="store_true", help="show tracebacks for errors")


def request_from_args(cls: type[StepRequest], args: argparse.Namespace) -> StepRequest:
    """The request the parsed flags describe; a value the request refuses is a usage error (exit 2)."""
    values = {item.name: getattr(args, item.name) for item in fields(cls) if hasattr(args, item.name)}
    try:
        return cls(**values)
    except RequestError as exc:
        fatal(f"{exc} (see --help)", code=2)
