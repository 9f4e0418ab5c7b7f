"""What the command lines share: flags (ours and RVC's), progress, errors, JSON output.

Output rules: results go to stdout (with ``--json``: one JSON document and
nothing else), progress and notes to stderr, errors as one ``error: ...``
line on stderr.  Expected errors (bad files, bad settings) never show a
traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn, TextIO

from infer.f0 import F0_METHODS
from infer.params import ConvertParams

EXPECTED_ERRORS = (ValueError, OSError)  # ModelFileError, AudioFileError, ConversionError, FileExistsError, ...
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_NUMBERS = re.compile(r"\d+")


class CliError(Exception):
    """Stops a command with a message for stderr and an exit code (1 input error, 2 usage)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fatal(message: str, code: int = 1) -> NoReturn:
    """Stop the running command: ``error: <message>`` on stderr, exit ``code``."""
    raise CliError(message, code)


class ProgressReporter:
    """Progress on stderr for ``progress(fraction, message)`` callbacks.

    On a terminal: one line redrawn with ``\\r`` (``[#####.....]  50%  converting``).
    Otherwise (logs, pipes): one plain line each time the stage changes (the
    message apart from its numbers, so "converting segment 2/9" is not
    repeated per segment).  Disabled: prints nothing.
    """

    def __init__(self, stream: TextIO, *, enabled: bool = True, interval: float = 0.1, width: int = 24) -> None:
        self.stream, self.enabled, self.interval, self.width = stream, enabled, interval, width
        self.tty = enabled and bool(getattr(stream, "isatty", lambda: False)())
        self._shown_at = 0.0
        self._line = 0
        self._stage: str | None = None

    def __call__(self, fraction: float, message: str) -> None:
        if not self.enabled:
            return
        if not self.tty:
            stage = _NUMBERS.sub("", message)
            if stage != self._stage:
                self._stage = stage
                self.stream.write(f"{message}\n")
                self.stream.flush()
            return
        now = time.monotonic()
        if fraction < 1.0 and now - self._shown_at < self.interval:
            return
        self._shown_at = now
        filled = int(round(self.width * min(max(fraction, 0.0), 1.0)))
        text = f"[{'#' * filled}{'.' * (self.width - filled)}] {100 * fraction:3.0f}%  {message}"
        self.stream.write("\r" + text.ljust(self._line))
        self._line = max(self._line, len(text))
        self.stream.flush()

    def end_line(self) -> None:
        """Finish the redrawn line so that the next output starts on a fresh one."""
        if self.tty and self._line:
            self.stream.write("\n")
            self.stream.flush()
        self._line, self._stage = 0, None


@dataclass
class Console:
    """Where a command writes: results to ``stdout``, everything else to ``stderr``."""

    stdout: TextIO
    stderr: TextIO
    quiet: bool = False
    as_json: bool = False
    progress: ProgressReporter = field(init=False)

    def __post_init__(self) -> None:
        self.progress = ProgressReporter(self.stderr, enabled=not self.quiet)

    def note(self, text: str) -> None:
        """A remark on stderr (index used, skipped file); hidden by ``--quiet``."""
        if not self.quiet:
            self.progress.end_line()
            print(text, file=self.stderr, flush=True)

    def warn(self, text: str) -> None:
        """``warning: ...`` on stderr, shown even with ``--quiet``."""
        self.progress.end_line()
        print(f"warning: {text}", file=self.stderr, flush=True)

    def result(self, text: str) -> None:
        """A result line on stdout (not with ``--json``)."""
        if not self.as_json:
            print(text, file=self.stdout, flush=True)

    def json(self, data: Any) -> None:
        """The one JSON document of a ``--json`` run, on stdout."""
        json.dump(data, self.stdout, indent=2, ensure_ascii=False, default=str)
        self.stdout.write("\n")
        self.stdout.flush()


def run_command(handler: Callable[[argparse.Namespace, Console], int], args: argparse.Namespace) -> int:
    """Run ``handler`` and turn expected errors into ``error: ...`` lines and exit codes.

    With ``--json`` anything a library prints to stdout is sent to stderr, so
    that stdout holds only the JSON document.
    """
    console = Console(sys.stdout, sys.stderr, quiet=getattr(args, "quiet", False), as_json=getattr(args, "json", False))
    debug = getattr(args, "debug", False)
    try:
        redirect = contextlib.redirect_stdout(sys.stderr) if console.as_json else contextlib.nullcontext()
        with redirect:
            return handler(args, console)
    except CliError as exc:
        return _report_error(console, str(exc), exc.code, debug)
    except KeyboardInterrupt:
        console.progress.end_line()
        print("interrupted; nothing was written for the file in progress.", file=sys.stderr)
        return 130
    except EXPECTED_ERRORS as exc:
        return _report_error(console, str(exc) or type(exc).__name__, 1, debug)
    finally:
        console.progress.end_line()


def _report_error(console: Console, message: str, code: int, debug: bool) -> int:
    console.progress.end_line()
    if debug:
        traceback.print_exc(file=console.stderr)
    print(f"error: {' '.join(message.split())}", file=console.stderr, flush=True)
    return code


# ---- flags ---------------------------------------------------------------------------------------


def device_choice(text: str) -> str:
    """argparse type for ``--device``: auto, cpu, cuda, cuda:N or mps."""
    if not _DEVICE.match(text.strip().lower()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    return text.strip().lower()


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """``--force``, ``--json``, ``--quiet`` and ``--debug``."""
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout (and nothing else)")
    parser.add_argument("--quiet", action="store_true", help="no progress or notes on stderr (errors still shown)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")


def add_conversion_flags(parser: argparse.ArgumentParser) -> None:
    """The voice, the settings of :class:`~infer.params.ConvertParams` (same defaults) and the models."""
    d = ConvertParams()
    voice = parser.add_argument_group("voice")
    voice.add_argument("--voice", required=True, help="voice model: a .pth path, or a name in the weights folder")
    voice.add_argument(
        "--index",
        default="auto",
        metavar="auto|none|PATH",
        help="feature index: 'auto' (default) finds the one trained for the voice, 'none' converts without",
    )
    voice.add_argument("--speaker-id", type=int, default=d.speaker_id, help="speaker of a multi-speaker voice")
    opts = parser.add_argument_group("conversion settings (defaults as in the web UI)")
    opts.add_argument("--key", type=float, default=d.key, help="transpose in semitones (+12 = an octave up)")
    opts.add_argument("--auto-key", action="store_true", help="choose the key from the voice's pitch range")
    opts.add_argument("--f0-method", choices=F0_METHODS, default=d.f0_method, help="pitch detector")
    opts.add_argument("--index-rate", type=float, default=d.index_rate, help="share of retrieved features, 0..1")
    opts.add_argument("--filter-radius", type=int, default=d.filter_radius, help="harvest median-filter radius")
    opts.add_argument("--resample-sr", type=int, default=d.resample_sr, help="output sample rate, 0 = the voice's")
    opts.add_argument("--rms-mix-rate", type=float, default=d.rms_mix_rate, help="1 = converted loudness, 0 = input's")
    opts.add_argument("--protect", type=float, default=d.protect, help="protect voiceless consonants, 0.5 = off")
    opts.add_argument("--f0-curve", type=Path, metavar="FILE", help="pitch curve file: 'seconds,hertz' per line")
    opts.add_argument("--noise-scale", type=float, default=d.noise_scale, help="0 gives deterministic output")
    opts.add_argument("--seed", type=int, default=d.seed, help="makes the output reproducible")
    models = parser.add_argument_group("models and device")
    models.add_argument(
        "--device", type=device_choice, help="auto, cpu, cuda, cuda:N or mps (default: $RVC_DEVICE or auto)"
    )
    models.add_argument("--half", action=argparse.BooleanOptionalAction, default=None, help="float16 (CUDA only)")
    models.add_argument(
        "--hubert", type=Path, metavar="PATH", help="content encoder (default: assets/hubert/hubert_base.pt)"
    )
    models.add_argument("--rmvpe", type=Path, metavar="PATH", help="RMVPE weights (default: assets/rmvpe/rmvpe.pt)")


def params_from_args(args: argparse.Namespace) -> ConvertParams:
    """``ConvertParams`` from parsed flags; out-of-range values stop with a usage error (exit 2)."""
    names = {f.name for f in fields(ConvertParams)}
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    try:
        return ConvertParams(**values)
    except ValueError as exc:
        fatal(f"{exc} (see --help)", code=2)


# ---- RVC's script flags (tools/infer_cli.py, tools/infer_batch_rvc.py) ---------------------------

RVC_FILTER_HELP = (
    "RVC's median-filter switch: 3 or more smooths harvest pitch with a 3-frame median "
    "(our --filter-radius 1), less than 3 turns it off; other f0 methods ignore it"
)


def rvc_bool(text: str) -> bool:
    """``--is_half`` value: True/False, 1/0, yes/no, on/off (RVC's ``type=bool`` took "False" as true)."""
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; use True or False")


def add_rvc_flags(parser: argparse.ArgumentParser, *, input_help: str, output_help: str, filter_radius: int) -> None:
    """RVC's flags with RVC's defaults (spec §10.1); ``--model_name`` is looked up in the weights folder."""
    parser.add_argument("--f0up_key", type=int, default=0, help="transpose in semitones (default 0)")
    parser.add_argument("--input_path", required=True, help=input_help)
    parser.add_argument("--index_path", default="", help="feature index file (empty: none)")
    parser.add_argument("--f0method", choices=F0_METHODS, default="harvest", help="pitch detector (default harvest)")
    parser.add_argument("--opt_path", required=True, help=output_help)
    parser.add_argument(
        "--model_name",
        required=True,
        help="voice file name inside the weights folder (weights/, or $RVC_WEIGHTS_DIR), or a path to a .pth",
    )
    parser.add_argument("--index_rate", type=float, default=0.66, help="share of retrieved features (default 0.66)")
    parser.add_argument("--device", type=device_choice, help="cpu, cuda, cuda:N or mps (default: automatic)")
    parser.add_argument(
        "--is_half",
        type=rvc_bool,
        metavar="True|False",
        help="float16 on CUDA; unlike RVC, 'False' and '0' really mean false (default: automatic)",
    )
    parser.add_argument(
        "--filter_radius", type=int, default=filter_radius, help=f"{RVC_FILTER_HELP} (default {filter_radius})"
    )
    parser.add_argument("--resample_sr", type=int, default=0, help="output sample rate, 0 = the voice's (default 0)")
    parser.add_argument("--rms_mix_rate", type=float, default=1.0, help="1 = converted loudness (default 1)")
    parser.add_argument("--protect", type=float, default=0.33, help="protect voiceless consonants (default 0.33)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
