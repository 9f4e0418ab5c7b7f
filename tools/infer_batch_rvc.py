"""RVC's ``tools/infer_batch_rvc.py``: convert every .wav of a folder, with RVC's flags.

    python tools/infer_batch_rvc.py --model_name alice.pth --input_path songs/ --opt_path out/ --f0method rmvpe

Each ``<input_path>/<name>.wav`` is written as an int16 WAV to
``<opt_path>/<name>.wav`` (overwritten, as RVC did; the folder is created).
Hidden files (``.name.wav``, such as macOS ``._song.wav``) are left out.
Same flags and defaults as RVC's script (f0 method harvest, index rate 0.66,
filter radius 1 = no median filter, rms mix rate 1, protect 0.33, speaker 0);
--is_half reads True/False properly and --model_name may also be a path.
Unlike RVC, a file that fails is reported and the others still convert (the
exit code is then 1), and an output that would replace its own input (the
same folder for both) is refused.
"""

from __future__ import annotations

import argparse

if __name__ == "__main__" and not __package__:  # run as a script: the project may not be installed
    from _bootstrap import run_from_checkout

    run_from_checkout(__file__)
from pathlib import Path

from infer.cli.common import Console, add_rvc_flags, fatal, run_command
from infer.cli.convert import rvc_prepare


def build_parser() -> argparse.ArgumentParser:
    """RVC's flags (spec §10.1); the batch script's filter radius default was 1 (off)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_rvc_flags(
        parser,
        input_help="folder whose .wav files are converted",
        output_help="folder for the results",
        filter_radius=1,
    )
    return parser


def convert_folder(args: argparse.Namespace, console: Console) -> int:
    """Convert the folder's .wav files; one line per file, like RVC's progress."""
    from infer.audio import clean_path
    from infer.batch import convert_batch

    folder, out_dir = Path(clean_path(args.input_path)), Path(clean_path(args.opt_path))
    if not folder.is_dir():
        fatal(f"--input_path '{folder}' is not a folder; give the folder holding the .wav files.")
    inputs = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(".wav") and p.name[0] != ".")
    if not inputs:
        fatal(f"no .wav files in '{folder}'.")
    job = rvc_prepare(args, console)

    def show(item) -> None:
        console.result(f"{item.input.name}->{'Success.' if item.status == 'converted' else item.message}")

    items = convert_batch(job, inputs, out_dir, format="wav", overwrite=True, on_item=show)
    return 1 if any(item.status == "failed" for item in items) else 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and convert; returns the exit code."""
    args = build_parser().parse_args(argv)
    return run_command(convert_folder, args)


if __name__ == "__main__":
    raise SystemExit(main())
