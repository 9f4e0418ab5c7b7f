"""Download the external model files RVC needs (HuBERT, RMVPE, pretrained G/D).

    python tools/download_models.py                    # the "essential" group
    python tools/download_models.py --only rmvpe pretrained_v2
    python tools/download_models.py --all --base-url https://hf-mirror.com/lj1995/VoiceConversionWebUI/resolve/main/
    python tools/download_models.py --list

Interrupted downloads resume on the next run.  Files are verified (size and
SHA-256) before they are put in place.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from infer.assets import DEFAULT_BASE_URL, GROUPS, Asset, asset_path, assets_dir, missing_assets, select_assets
from infer.download import DownloadError, download_assets


class ProgressLine:
    """Prints ``\\r  name  45% 85.2/189.5 MB 12.3 MB/s`` for the file being downloaded."""

    def __init__(self, stream: TextIO, interval: float = 0.2) -> None:
        self.stream = stream
        self.interval = interval
        self.key: str | None = None
        self.width = 0

    def __call__(self, asset: Asset, done: int, total: int | None) -> None:
        now = time.monotonic()
        if asset.key != self.key:
            self.key, self.started, self.first_bytes, self.shown_at = asset.key, now, done, 0.0
        finished = total is not None and done >= total
        if not finished and now - self.shown_at < self.interval:
            return
        self.shown_at = now
        speed = (done - self.first_bytes) / max(now - self.started, 1e-3) / 1e6
        if total:
            text = (
                f"  {asset.filename}  {100 * done / total:3.0f}% {done / 1e6:.1f}/{total / 1e6:.1f} MB {speed:.1f} MB/s"
            )
        else:
            text = f"  {asset.filename}  {done / 1e6:.1f} MB {speed:.1f} MB/s"
        self.width = max(self.width, len(text))
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()

    def end_line(self) -> None:
        if self.key is not None:
            self.stream.write("\n")
            self.stream.flush()
        self.key, self.width = None, 0


def print_list(root: Path) -> None:
    missing = {asset.key for asset in missing_assets(root=root)}
    print(f"Assets folder: {root}")
    for asset in select_assets(["all"]):
        size = f"{asset.size / 1e6:7.1f} MB" if asset.size is not None else "      ? MB"
        state = "missing" if asset.key in missing else "present"
        print(f"  {asset.key:22} {state:8} {size}  {asset.description}")
    print("Groups: " + ", ".join(f"{name} ({len(keys)})" for name, keys in GROUPS.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--only", nargs="+", action="extend", metavar="KEY_OR_GROUP", help="assets or groups to get")
    which.add_argument("--all", action="store_true", help="get every asset (26 files)")
    parser.add_argument("--list", action="store_true", help="show the assets and groups, then exit")
    parser.add_argument("--assets-dir", type=Path, help="assets folder (default: $RVC_ASSETS_DIR or <repo>/assets)")
    parser.add_argument(
        "--base-url", default=DEFAULT_BASE_URL, help=f"download from here (default: {DEFAULT_BASE_URL})"
    )
    parser.add_argument("--force", action="store_true", help="download again even if the files are present")
    args = parser.parse_args(argv)

    root = args.assets_dir if args.assets_dir is not None else assets_dir()
    if args.list:
        print_list(root)
        return 0
    names = ["all"] if args.all else (args.only or ["essential"])
    try:
        selected = select_assets(names)
    except KeyError as exc:
        parser.error(exc.args[0])

    wanted = selected if args.force else missing_assets([a.key for a in selected], root)
    for asset in selected:
        if asset not in wanted:
            print(f"already present: {asset_path(asset, root)}")
    if not wanted:
        print("Nothing to download.")
        return 0
    known = sum(a.size or 0 for a in wanted)
    amount = "" if not known else f", {'over ' if any(a.size is None for a in wanted) else ''}{known / 1e6:.0f} MB"
    print(f"Downloading {len(wanted)} file(s){amount} into {root}", flush=True)

    bar = ProgressLine(sys.stderr)
    try:
        for asset in wanted:
            download_assets([asset], root=root, base_url=args.base_url, progress=bar, force=args.force)
            bar.end_line()
    except DownloadError as exc:
        bar.end_line()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bar.end_line()
        print("Interrupted. The partial download is kept; run the same command to resume.", file=sys.stderr)
        return 130
    print(f"Done: {len(wanted)} file(s) in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
