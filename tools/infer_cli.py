"""RVC's ``tools/infer_cli.py``: convert one file, with RVC's flags, into an int16 WAV.

    python tools/infer_cli.py --model_name alice.pth --input_path song.wav --opt_path out.wav \\
        --f0up_key 3 --f0method rmvpe --index_path logs/alice/added_IVF256_Flat_nprobe_1_alice_v2.index

Same flags and defaults as RVC (f0 method harvest, index rate 0.66, rms mix
rate 1, protect 0.33, speaker 0).  Differences: --model_name may also be a
path; --is_half reads True/False properly (RVC took any text, even "False",
as true); --filter_radius is RVC's switch (3 or more = a 3-frame median on
harvest pitch); an --index_path that does not exist gives a warning instead
of a silent conversion without an index.  The output is always WAV and is overwritten.
For more options use ``python -m infer convert``.
"""

from __future__ import annotations

import argparse

if __name__ == "__main__" and not __package__:  # run as a script: the project may not be installed
    from _bootstrap import run_from_checkout

    run_from_checkout(__file__)

from infer.cli.common import Console, add_rvc_flags, run_command
from infer.cli.convert import rvc_prepare


def build_parser() -> argparse.ArgumentParser:
    """RVC's flags (spec §10.1)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_rvc_flags(parser, input_help="audio file to convert", output_help="WAV file to write", filter_radius=3)
    return parser


def convert(args: argparse.Namespace, console: Console) -> int:
    """Convert ``--input_path`` into ``--opt_path`` and print RVC's info text."""
    from infer.audio import audio_info, clean_path
    from infer.convert import convert_file

    source = clean_path(args.input_path)
    audio_info(source)  # a missing or non-audio input fails before any model loads
    job = rvc_prepare(args, console)
    result = convert_file(job, source, clean_path(args.opt_path), format="wav", overwrite=True)
    for warning in result.warnings:
        console.warn(warning)
    console.result(result.info_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and convert; returns the exit code."""
    args = build_parser().parse_args(argv)
    return run_command(convert, args)


if __name__ == "__main__":
    raise SystemExit(main())
