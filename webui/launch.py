"""Command line of ``infer-web.py``: parse flags, build the UI, serve it."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from config import Settings

DEFAULT_PORT = 7865
LOCAL_HOST = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"
QUEUE_SIZE = 1024
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="infer-web.py", description="RVC Studio web UI")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})")
    parser.add_argument("--listen", action="store_true", help="accept connections from other machines (0.0.0.0)")
    parser.add_argument("--noautoopen", action="store_true", help="do not open the browser")
    parser.add_argument("--auth", metavar="USER:PASS", help="require this user name and password")
    parser.add_argument(
        "--lang", help="UI language: en_US, zh_CN, ja_JP, ko_KR (default: each browser's own, else English)"
    )
    parser.add_argument(
        "--allow-path",
        action="append",
        default=[],
        metavar="FOLDER",
        help="one more folder the UI may read typed paths from (repeatable; the studio folders always are)",
    )
    parser.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="let bundle import fetch loopback/private/link-local addresses (off: public http(s) only)",
    )
    parser.add_argument("--max-upload-mb", type=int, metavar="N", help="largest uploaded file in MB (default 512)")
    parser.add_argument(
        "--max-input-minutes", type=float, metavar="N", help="longest input to convert in minutes (default 30)"
    )
    args = parser.parse_args(argv)
    for folder in args.allow_path:
        if not Path(folder).expanduser().is_dir():
            parser.error(f"--allow-path: '{folder}' is not a folder; create it or give an existing one")
    if args.max_upload_mb is not None and args.max_upload_mb < 1:
        parser.error(f"--max-upload-mb must be at least 1, got {args.max_upload_mb}")
    if args.max_input_minutes is not None and not args.max_input_minutes > 0:
        parser.error(f"--max-input-minutes must be more than 0, got {args.max_input_minutes}")
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    if args.auth is not None and (":" not in args.auth or not args.auth.split(":", 1)[0]):
        parser.error("--auth takes USER:PASS")
    if args.lang is not None:
        from i18n import LANGUAGES, normalize_language

        if args.lang.strip().lower() != "auto" and normalize_language(args.lang) is None:
            parser.error(f"--lang must be one of {', '.join(LANGUAGES)} (or auto), got {args.lang!r}")
    return args


def bypass_proxy_for_local_hosts() -> None:
    """Make local requests skip any HTTP proxy (RVC FAQ Q6: the UI hangs behind a proxy otherwise)."""
    for name in ("NO_PROXY", "no_proxy"):
        present = [h.strip() for h in os.environ.get(name, "").split(",") if h.strip()]
        os.environ[name] = ",".join(present + [h for h in _LOCAL_HOSTS if h not in present])


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's :class:`Settings` with the server flags applied (``--allow-path`` adds to ``RVC_INPUT_DIRS``)."""
    settings = Settings.from_env()
    folders = tuple(Path(folder).expanduser().resolve() for folder in args.allow_path)
    changes: dict[str, object] = {"input_dirs": settings.input_dirs + folders}
    if args.allow_private_urls:
        changes["allow_private_urls"] = True
    if args.max_upload_mb is not None:
        changes["max_upload_mb"] = args.max_upload_mb
    if args.max_input_minutes is not None:
        changes["max_input_minutes"] = args.max_input_minutes
    return replace(settings, **changes)


def use_private_gradio_folder() -> Path:
    """Point Gradio's upload/cache folder at a new folder only this process uses (removed at exit).

    Gradio's default ``/tmp/gradio`` is shared by every Gradio app of the
    machine; a private one means the guard's "files of this server" are
    exactly the files of this folder.  Must run before gradio is imported.
    """
    base = os.environ.get("GRADIO_TEMP_DIR")
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="rvc-studio-gradio-", dir=base or None)).resolve()
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def report_installation_problems(settings: Settings, log: logging.Logger) -> int:
    """Log each failed installation check (see ``python -m infer doctor``); returns how many failed.

    Missing model files are only a warning there: the UI's banner offers them.
    The check never stops the server from starting.
    """
    from infer.doctor import FAIL, check_installation

    try:
        report = check_installation(
            assets_dir=settings.assets_dir, weights_dir=settings.weights_dir, logs_dir=settings.logs_dir
        )
    except Exception as exc:  # a broken check must not keep the UI from starting
        log.warning("installation check skipped: %s", exc)
        return 0
    failed = [check for check in report.checks if check.status == FAIL]
    for check in failed:
        log.warning("%s: %s → %s", check.name, check.detail, check.fix)
    return len(failed)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request gradio makes to itself
    bypass_proxy_for_local_hosts()
    settings = settings_from(args)
    gradio_folder = use_private_gradio_folder()
    from webui.app import build_ui  # gradio is imported only when serving
    from webui.localize import UILanguage
    from webui.security import guard_middleware

    report_installation_problems(settings, logging.getLogger("rvc-studio"))
    ui = UILanguage.create(args.lang)
    app = build_ui(settings, ui)
    host = ALL_INTERFACES if args.listen else LOCAL_HOST
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    print(f"RVC Studio: serving on http://{host}:{args.port}", flush=True)
    app.queue(max_size=QUEUE_SIZE).launch(
        server_name=host,
        server_port=args.port,
        inbrowser=not args.noautoopen,
        auth=auth,
        quiet=True,
        show_error=True,
        i18n=ui.gradio_i18n(),
        max_file_size=settings.max_upload_mb * 1024 * 1024,
        app_kwargs={"middleware": [guard_middleware(gradio_folder, settings.max_upload_mb)]},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
