"""The missing-assets banner: which model files are absent, and a button that downloads them with progress.

The UI starts without the assets; the banner names each missing file and
where it belongs, and hides itself once everything is there.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from config import Settings
from infer.assets import MIRROR_BASE_URL, Asset, asset_path, select_assets
from infer.download import DownloadError, download_assets
from webui.errors import user_error
from webui.studio_context import StudioContext

NEEDED = ("essential",)  # content encoder, RMVPE and the default pretrained G/D (v2, 40 kHz)


def missing_files(settings: Settings) -> list[Asset]:
    """The needed assets that are not in ``settings.assets_dir``.

    Only absence counts: the downloader never leaves a partial file at the
    final path, and a different file placed there by the user is respected.
    """
    return [a for a in select_assets(NEEDED) if not asset_path(a, settings.assets_dir).is_file()]


def missing_text(ctx: StudioContext, missing: list[Asset]) -> str:
    """Markdown: the (translated) heading, then one line per missing file with its path and purpose."""
    lines = [f"- `{asset_path(a, ctx.settings.assets_dir)}` — {a.description}" for a in missing]
    return ctx.t("assets.missing") + "\n\n" + "\n".join(lines)


def download_missing(
    settings: Settings, base_url: str | None, report: Callable[[float, Asset, int, int | None], None]
) -> list[Asset]:
    """Download every missing needed asset into ``settings.assets_dir``; returns what was fetched.

    ``report(fraction_of_all_bytes, asset, bytes_done, bytes_total)`` follows
    the download.  Raises :class:`infer.download.DownloadError` (offline,
    checksum mismatch ...) with a message saying what to do.
    """
    todo = missing_files(settings)
    sizes = {a.key: a.size or 0 for a in todo}
    grand_total = max(sum(sizes.values()), 1)
    state = {"before": 0, "current": ""}

    def on_bytes(asset: Asset, done: int, total: int | None) -> None:
        if asset.key != state["current"]:
            state["before"] += sizes.get(state["current"], 0)
            state["current"] = asset.key
        report(min((state["before"] + done) / grand_total, 1.0), asset, done, total)

    download_assets(todo, settings.assets_dir, base_url, progress=on_bytes)
    return todo


def build_banner(ctx: StudioContext) -> None:
    """The banner (hidden when nothing is missing), placed above the tabs by the app."""
    missing = missing_files(ctx.settings)
    with gr.Group(visible=bool(missing), elem_id="assets-banner") as banner:
        note = gr.Markdown(missing_text(ctx, missing), elem_id="assets-missing")
        gr.Markdown(ctx.t("assets.manual"))
        with gr.Row():
            mirror = gr.Checkbox(False, label=ctx.t("assets.use_mirror"), info=MIRROR_BASE_URL)
            button = gr.Button(ctx.t("assets.download"), variant="primary", elem_id="assets-download")

    def download(use_mirror: bool, request: gr.Request, progress=gr.Progress()):
        """Download the missing files (resumable, verified), reporting bytes as progress."""

        def report(fraction: float, asset: Asset, done: int, total: int | None) -> None:
            desc = ctx.text(
                "assets.downloading", request, name=asset.filename, done=done / 1e6, total=(total or 0) / 1e6
            )
            progress(fraction, desc=desc)

        try:
            fetched = download_missing(ctx.settings, MIRROR_BASE_URL if use_mirror else None, report)
        except DownloadError as exc:
            raise user_error(str(exc)) from exc
        remaining = missing_files(ctx.settings)
        if not remaining:
            gr.Info(ctx.text("assets.done", request, count=len(fetched)))
        return gr.Group(visible=bool(remaining)), missing_text(ctx, remaining)

    button.click(download, inputs=[mirror], outputs=[banner, note], api_visibility="private")
