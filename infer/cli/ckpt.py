"""``python -m infer ckpt merge|info|set-info|extract|bundle|import|export-onnx``: the checkpoint tools.

Voices can be given as paths or as names in the weights folder
($RVC_WEIGHTS_DIR, default weights/); outputs given as bare names go there too.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from infer.cli.common import Console, fatal

DESCRIPTION = """Checkpoint tools: merge voices, show or change their info, extract a voice from a
G_*.pth, pack or import a voice bundle (.zip), export a voice to ONNX.

examples:
  python -m infer ckpt merge alice bob --weight-a 0.6 --output alice_bob
  python -m infer ckpt info alice
  python -m infer ckpt set-info alice "Alice, 200 epochs, clean studio data"
  python -m infer ckpt extract logs/alice/G_2333333.pth            (rate/version from logs/alice)
  python -m infer ckpt bundle alice                                (weights/alice.zip with model + index)
  python -m infer ckpt import https://example.org/alice.zip --name alice2
  python -m infer ckpt export-onnx alice --output alice.onnx
"""


def _settings(args: argparse.Namespace):
    from config import Settings

    overrides = {} if args.weights_dir is None else {"weights_dir": args.weights_dir}
    return Settings.from_env(**overrides)


def _voice(text: str, args: argparse.Namespace) -> Path:
    """A voice (or checkpoint) given as a path or a name in the weights folder."""
    from infer.cli.convert import resolve_voice

    return resolve_voice(text, _settings(args).weights_dir)


def _common(parser: argparse.ArgumentParser, *, writes: bool = True) -> None:
    if writes:
        parser.add_argument(
            "--output", "-o", metavar="NAME|PATH", help="output file: a bare name goes into the weights folder"
        )
        parser.add_argument("--force", action="store_true", help="replace an existing output")
    parser.add_argument(
        "--weights-dir", type=Path, metavar="DIR", help="weights folder (default $RVC_WEIGHTS_DIR or weights/)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout (and nothing else)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ckpt`` and its seven sub-commands on ``subparsers``."""
    parser = subparsers.add_parser(
        "ckpt",
        help="merge, inspect, extract, bundle, import or export voices",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tools = parser.add_subparsers(dest="tool", metavar="TOOL", required=True)

    merge = tools.add_parser("merge", help="mix two voices: weight·A + (1−weight)·B")
    merge.add_argument("a", help="voice A: .pth path, name in the weights folder, or a G_*.pth")
    merge.add_argument("b", help="voice B (same rate, version and pitch setting as A)")
    merge.add_argument("--weight-a", type=float, default=0.5, help="share of voice A, 0..1 (default 0.5)")
    merge.add_argument("--info", default="", help="info text of the result")
    _common(merge)
    merge.set_defaults(handler=run_merge)

    info = tools.add_parser("info", help="show a voice's rate, version, pitch, speakers, epochs, size, metadata")
    info.add_argument("voice", help="voice .pth (or G_*.pth) path or name")
    _common(info, writes=False)
    info.set_defaults(handler=run_info)

    set_info = tools.add_parser("set-info", help="change a voice's info text (in place unless --output)")
    set_info.add_argument("voice", help="voice .pth path or name")
    set_info.add_argument("text", help="the new info text")
    _common(set_info)
    set_info.set_defaults(handler=run_set_info)

    extract = tools.add_parser("extract", help="make a voice (small model) from a G_*.pth training checkpoint")
    extract.add_argument("checkpoint", type=Path, help="the G_*.pth file")
    extract.add_argument("--version", choices=("v1", "v2"), help="default: the experiment's (config.json/train.log)")
    extract.add_argument("--sample-rate", choices=("32k", "40k", "48k"), help="default: the experiment's")
    extract.add_argument("--info", default="", help="info text (default 'Extracted model.')")
    extract.add_argument(
        "--rvc-table-config",
        action="store_true",
        help="store RVC's hard-coded config even if it does not fit the weights (RVC's behaviour)",
    )
    _common(extract)
    extract.set_defaults(handler=run_extract)

    bundle = tools.add_parser("bundle", help="pack a voice, its index and voice.json into one .zip")
    bundle.add_argument("voice", help="voice .pth path or name")
    bundle.add_argument("--index", default="auto", metavar="auto|none|PATH", help="index to include (default auto)")
    bundle.add_argument("--name", help="voice name inside the bundle (default: the file's)")
    bundle.add_argument("--key", type=float, default=0.0, help="suggested key, semitones")
    bundle.add_argument("--index-rate", type=float, help="suggested index rate (default 0.75, 0 without index)")
    bundle.add_argument("--protect", type=float, help="suggested protect (default 0.33)")
    _common(bundle)
    bundle.set_defaults(handler=run_bundle)

    imp = tools.add_parser("import", help="install a voice from a .zip path or URL (ours or another app's)")
    imp.add_argument("source", help=".zip path or http(s) URL (local-network addresses are allowed here)")
    imp.add_argument("--name", help="name for the voice (default: from the bundle)")
    imp.add_argument("--member", help="which .pth to import from a zip that holds several")
    imp.add_argument("--indices-dir", type=Path, metavar="DIR", help="where the index goes (default assets/indices)")
    imp.add_argument("--force", action="store_true", help="replace an existing voice of the same name")
    _common(imp, writes=False)
    imp.set_defaults(handler=run_import)

    onnx = tools.add_parser("export-onnx", help="export a voice to ONNX (RVC's input names)")
    onnx.add_argument("voice", help="voice .pth path or name")
    onnx.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    onnx.add_argument(
        "--no-nsf-noise",
        action="store_true",
        help="leave the pitch source's random noise out of the graph (deterministic for a given rnd)",
    )
    _common(onnx)
    onnx.set_defaults(handler=run_export_onnx)
    return parser


def _finish(console: Console, args: argparse.Namespace, data: dict[str, Any], text: str, warnings=()) -> int:
    console.progress.end_line()
    for warning in warnings:
        console.warn(warning)
    if args.json:
        console.json(data)
    else:
        console.result(text)
    return 0


def _progress(console: Console):
    return None if console.quiet else console.progress


def run_merge(args: argparse.Namespace, console: Console) -> int:
    from infer.ckpt import merge_voices

    result = merge_voices(
        _voice(args.a, args),
        _voice(args.b, args),
        args.weight_a,
        args.output,
        info=args.info,
        weights_dir=_settings(args).weights_dir,
        overwrite=args.force,
        progress=_progress(console),
    )
    return _finish(console, args, result.to_json(), f"wrote {result.path}", result.warnings)


def run_info(args: argparse.Namespace, console: Console) -> int:
    from infer.ckpt import voice_info

    info = voice_info(_voice(args.voice, args))
    return _finish(console, args, info.to_json(), info.text())


def run_set_info(args: argparse.Namespace, console: Console) -> int:
    from infer.ckpt import set_voice_info

    result = set_voice_info(
        _voice(args.voice, args), args.text, args.output, overwrite=args.force, progress=_progress(console)
    )
    return _finish(console, args, result.to_json(), f"wrote {result.path}", result.warnings)


def run_extract(args: argparse.Namespace, console: Console) -> int:
    from infer.ckpt import extract_voice

    if not args.checkpoint.is_file():
        fatal(f"checkpoint '{args.checkpoint}' does not exist. Pass the path of a G_*.pth file.")
    result = extract_voice(
        args.checkpoint,
        args.output,
        weights_dir=_settings(args).weights_dir,
        version=args.version,
        sample_rate=args.sample_rate,
        info=args.info,
        rvc_table_config=args.rvc_table_config,
        overwrite=args.force,
        progress=_progress(console),
    )
    return _finish(console, args, result.to_json(), f"wrote {result.path}", result.warnings)


def run_bundle(args: argparse.Namespace, console: Console) -> int:
    from infer.ckpt import make_bundle

    settings = _settings(args)
    index = None if args.index.strip().lower() == "none" else args.index
    result = make_bundle(
        _voice(args.voice, args),
        args.output,
        index=index,
        search_dirs=[settings.logs_dir, settings.assets_dir / "indices"],
        logs_dir=settings.logs_dir,
        name=args.name,
        key=args.key,
        index_rate=args.index_rate,
        protect=args.protect,
        weights_dir=settings.weights_dir,
        overwrite=args.force,
        progress=_progress(console),
    )
    included = f" with index {result.manifest['index']}" if result.manifest.get("index") else " (no index)"
    return _finish(console, args, result.to_json(), f"wrote {result.path}{included}", result.warnings)


def run_import(args: argparse.Namespace, console: Console) -> int:
    from infer.ckpt import FetchOptions, import_bundle

    settings = _settings(args)
    result = import_bundle(
        args.source,
        name=args.name,
        member=args.member,
        weights_dir=settings.weights_dir,
        indices_dir=args.indices_dir or settings.assets_dir / "indices",
        overwrite=args.force,
        progress=_progress(console),
        fetch=FetchOptions(allow_private_urls=True),  # the machine's owner may fetch from the local network
    )
    lines = [f"imported voice '{result.name}': {result.voice_path}"]
    if result.index_path:
        lines.append(f"index: {result.index_path}")
    return _finish(console, args, result.to_json(), "\n".join(lines), result.warnings)


def run_export_onnx(args: argparse.Namespace, console: Console) -> int:
    from infer.ckpt import export_onnx

    voice = _voice(args.voice, args)
    result = export_onnx(
        voice,
        args.output,
        weights_dir=args.weights_dir,
        opset=args.opset,
        nsf_noise=not args.no_nsf_noise,
        overwrite=args.force,
        progress=_progress(console),
    )
    return _finish(console, args, result.to_json(), result.text())
