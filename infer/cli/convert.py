"""``python -m infer convert`` (one file with one voice), and the set-up every command shares.

:func:`prepare_job` and :func:`rvc_prepare` turn parsed flags into a prepared
conversion: the voice looked up by path or name, the index paired by name,
the models on the chosen device.  ``batch`` and RVC's scripts use them too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from config import Settings
from infer.audio import SUPPORTED_OUTPUT_FORMATS
from infer.cli.common import Console, add_conversion_flags, add_output_flags, fatal, params_from_args
from infer.params import ConvertParams

DESCRIPTION = """Convert one audio file with a voice.

examples:
  python -m infer convert --voice alice --input song.mp3 --output out/song.flac --key 3
  python -m infer convert --voice weights/alice.pth --input a.wav --output a_alice.wav --index none --json
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``convert`` on ``subparsers``."""
    parser = subparsers.add_parser(
        "convert",
        help="convert one audio file with a voice",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    files = parser.add_argument_group("files")
    files.add_argument("--input", type=Path, required=True, metavar="FILE", help="audio file in any format")
    files.add_argument("--output", type=Path, required=True, metavar="FILE", help="file to write")
    files.add_argument(
        "--format", choices=SUPPORTED_OUTPUT_FORMATS, help="output format (default: from the --output suffix)"
    )
    add_conversion_flags(parser)
    add_output_flags(parser)
    parser.set_defaults(handler=run)
    return parser


def output_format(output: Path, requested: str | None) -> str:
    """The format to write: ``--format``, else the output's suffix; a mismatch is a usage error."""
    suffix = output.suffix.lower().lstrip(".")
    if requested is None:
        if suffix not in SUPPORTED_OUTPUT_FORMATS:
            fatal(
                f"cannot tell the output format of '{output}'; end the name with one of "
                f"{', '.join('.' + f for f in SUPPORTED_OUTPUT_FORMATS)} or pass --format.",
                code=2,
            )
        return suffix
    if suffix in SUPPORTED_OUTPUT_FORMATS and suffix != requested:
        fatal(f"'{output}' ends in .{suffix} but --format is {requested}; make them agree.", code=2)
    return requested


def run(args: argparse.Namespace, console: Console) -> int:
    """Convert ``--input`` into ``--output``; prints the result (or JSON). Returns the exit code."""
    from infer.audio import audio_info
    from infer.convert import convert_file

    for flag in ("input", "output", "f0_curve", "hubert", "rmvpe"):
        if "\x00" in str(getattr(args, flag, None) or ""):
            fatal(f"--{flag.replace('_', '-')}: the path contains a NUL character; type or paste the path again.")
    fmt = output_format(args.output, args.format)
    if args.output.is_dir():
        fatal(f"'{args.output}' is a folder; give a file name such as '{args.output / 'out.wav'}'.")
    if args.output.exists() and not args.force:
        fatal(f"'{args.output}' already exists; add --force to overwrite it, or choose another name.")
    audio_info(args.input)  # a missing or non-audio input fails now, before any model loads
    job = prepare_job(args, console)
    result = convert_file(job, args.input, args.output, format=fmt, overwrite=args.force, progress=console.progress)
    console.progress.end_line()
    for warning in result.warnings:
        console.warn(warning)
    written = audio_info(args.output)
    duration = written.duration
    if duration is None and result.audio is not None:
        duration = result.audio.shape[0] / result.sample_rate
    if args.json:
        console.json(
            {
                "input": str(args.input),
                "output": str(args.output),
                "format": fmt,
                "sample_rate": written.sample_rate,
                "duration": round(duration, 3) if duration is not None else None,
                "input_duration": round(result.input_seconds, 3),
                "voice": str(job.voice.path),
                "index": str(result.index_path) if result.index_path else None,
                "key": result.key,
                "f0_method": job.params.f0_method,
                "timings": result.times.as_dict(),
                "warnings": list(result.warnings),
            }
        )
        return 0
    length = f"{duration:.2f} s" if duration is not None else "unknown length"
    console.result(f"wrote {args.output} ({written.sample_rate} Hz, {length})")
    spent = ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in result.times.as_dict().items() if seconds)
    console.note(f"key {result.key:+g}; time: {spent}")
    return 0


# ---- setting up a conversion from flags ---------------------------------------------------------


def resolve_voice(text: str, weights_dir: Path) -> Path:
    """A voice given as a path, or as a name (``alice`` / ``alice.pth``) in ``weights_dir``."""
    given = Path(text)
    if given.is_dir():
        fatal(f"'{given}' is a folder; pass the voice's .pth file.")
    if given.is_file():
        return given
    if given.parent == Path("."):
        for name in (text, f"{text}.pth"):
            candidate = weights_dir / name
            if candidate.is_file():
                return candidate
    known = sorted(p.stem for p in weights_dir.glob("*.pth")) if weights_dir.is_dir() else []
    listing = f" Voices there: {', '.join(known[:20])}{' ...' if len(known) > 20 else ''}." if known else ""
    fatal(
        f"voice '{text}' not found: it is not a file, and the weights folder '{weights_dir}' has no "
        f"'{given.stem}.pth'.{listing} Pass a .pth path, or set RVC_WEIGHTS_DIR to the folder holding your voices."
    )


def resolve_index(choice: str, voice_path: Path, settings: Settings) -> Path | None:
    """``auto``: the index trained for the voice (exact name match) or None; ``none``/empty: None; else the path."""
    from infer.index_pairing import find_index_for_voice

    text = choice.strip()
    if text.lower() in ("", "none"):
        return None
    if text.lower() == "auto":
        search = [settings.logs_dir, settings.assets_dir / "indices", voice_path.parent]
        return find_index_for_voice(voice_path, [d for d in search if d.is_dir()])
    path = Path(text)
    if not path.is_file():
        fatal(f"index file '{path}' does not exist. Pick an existing .index file, or use --index auto or none.")
    return path


def build_cache(args: argparse.Namespace, settings: Settings):
    """A :class:`~infer.cache.ModelCache` for the flags' device, precision and model paths."""
    from infer.cache import ModelCache

    return ModelCache(
        hubert_path=args.hubert or settings.hubert_path,
        rmvpe_path=args.rmvpe or settings.rmvpe_path,
        device=args.device or settings.device,
        half=args.half,
    )


def prepare_job(args: argparse.Namespace, console: Console, settings: Settings | None = None):
    """Voice, index, settings and models checked and loaded (an :class:`~infer.convert.Conversion`)."""
    from infer.convert import prepare

    settings = settings or Settings.from_env()
    params = params_from_args(args)
    voice_path = resolve_voice(args.voice, settings.weights_dir)
    index_path = resolve_index(args.index, voice_path, settings)
    if params.index_rate == 0:
        index_path = None
        console.note("index: not used (index rate 0)")
    elif index_path is not None:
        console.note(f"index: {index_path}")
    else:
        console.note("index: none" if args.index.strip().lower() in ("", "none") else "index: no index found")
    cache = build_cache(args, settings)
    return prepare(voice_path, cache, params, index=index_path, logs_dir=settings.logs_dir)


def rvc_params(args: argparse.Namespace) -> ConvertParams:
    """``ConvertParams`` for RVC's flags; RVC's filter switch (>= 3) becomes our radius 1."""
    try:
        return ConvertParams(
            key=args.f0up_key,
            f0_method=args.f0method,
            index_rate=args.index_rate,
            filter_radius=1 if args.filter_radius >= 3 else 0,
            resample_sr=args.resample_sr,
            rms_mix_rate=args.rms_mix_rate,
            protect=args.protect,
        )
    except ValueError as exc:
        fatal(f"{exc} (see --help)", code=2)


def rvc_prepare(args: argparse.Namespace, console: Console, settings: Settings | None = None):
    """The :class:`~infer.convert.Conversion` for RVC's flags (speaker 0, RVC's noise, no seed).

    A missing ``--index_path`` file gives a warning and no index, as in RVC (where it was silent).
    """
    from infer.audio import clean_path
    from infer.cache import ModelCache
    from infer.convert import prepare

    settings = settings or Settings.from_env()
    params = rvc_params(args)
    voice_path = resolve_voice(clean_path(args.model_name), settings.weights_dir)
    index_text = clean_path(args.index_path or "")
    index_path = Path(index_text) if index_text else None
    if index_path is not None and not index_path.is_file():
        console.warn(f"index '{index_path}' not found; converting without an index (as RVC did).")
        index_path = None
    cache = ModelCache(
        hubert_path=settings.hubert_path,
        rmvpe_path=settings.rmvpe_path,
        device=args.device or settings.device,
        half=args.is_half,
    )
    return prepare(voice_path, cache, params, index=index_path, logs_dir=settings.logs_dir)
