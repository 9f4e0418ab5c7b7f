"""``python -m infer batch``: every audio file of a folder (or a list) with one voice.

    python -m infer batch --voice alice --input-dir songs/ --output-dir out/ --format flac
    python -m infer batch --voice alice --inputs a.wav b.mp3 --output-dir out/ --json

Each input becomes ``<output-dir>/<stem>.<format>`` (``a.wav`` -> ``a.flac``).
Files that are not audio are reported and skipped, a failed file does not stop
the batch, and the exit code is 1 when any file failed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from infer.audio import SUPPORTED_OUTPUT_FORMATS
from infer.cli.common import Console, add_conversion_flags, add_output_flags, fatal
from infer.cli.convert import prepare_job


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``batch`` on ``subparsers``."""
    parser = subparsers.add_parser(
        "batch",
        help="convert every audio file in a folder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    files = parser.add_argument_group("files")
    source = files.add_mutually_exclusive_group(required=True)
    source.add_argument("--input-dir", type=Path, metavar="DIR", help="convert the files in this folder")
    source.add_argument("--inputs", type=Path, nargs="+", metavar="FILE", help="convert these files")
    files.add_argument("--output-dir", type=Path, required=True, metavar="DIR", help="folder for the results")
    files.add_argument("--format", choices=SUPPORTED_OUTPUT_FORMATS, default="wav", help="output format (default wav)")
    add_conversion_flags(parser)
    add_output_flags(parser)
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace, console: Console) -> int:
    """Convert the inputs; prints one line per file and a summary (or a JSON list). Returns the exit code."""
    from infer.batch import BatchItem, collect_inputs, convert_batch, summarize

    inputs = collect_inputs(args.input_dir if args.input_dir is not None else args.inputs)
    if not inputs:
        fatal(f"no files to convert in '{args.input_dir}'.")
    if args.output_dir.exists() and not args.output_dir.is_dir():
        fatal(f"--output-dir '{args.output_dir}' is a file; give a folder.")
    job = prepare_job(args, console)
    for warning in job.voice.warnings:
        console.warn(warning)

    def show(item: BatchItem) -> None:
        console.progress.end_line()
        if item.status == "converted":
            console.result(f"converted  {item.input} -> {item.output}")
        else:
            console.result(f"{item.status:<10} {item.input}: {item.message}")

    items = convert_batch(
        job,
        inputs,
        args.output_dir,
        format=args.format,
        overwrite=args.force,
        progress=console.progress,
        on_item=show,
    )
    console.progress.end_line()
    counts = summarize(items)
    if args.json:
        console.json([item.as_dict() for item in items])
    else:
        console.result(f"{counts['converted']} converted, {counts['skipped']} skipped, {counts['failed']} failed")
        for item in items:
            if item.status == "failed":
                console.result(f"  failed: {item.input.name}: {item.message}")
    return 1 if counts["failed"] else 0
