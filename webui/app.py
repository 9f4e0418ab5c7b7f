"""The Gradio application. The tabs arrive with the UI issue; for now a status page."""

from __future__ import annotations

import gradio as gr

from config import Settings
from infer.assets import missing_assets


def asset_status(settings: Settings) -> str:
    """Markdown listing which external model files are present."""
    missing = missing_assets(root=settings.assets_dir)
    if not missing:
        return "All model files are present."
    lines = [f"- `{settings.assets_dir / a.relative_path}`" for a in missing]
    return (
        "**Missing model files** — download them with "
        "`python tools/download_models.py --all`:\n\n" + "\n".join(lines)
    )


def build_ui(settings: Settings) -> gr.Blocks:
    """Build the app (not launched)."""
    with gr.Blocks(title="RVC Studio") as app:
        gr.Markdown("## RVC Studio\nThe conversion and training tabs are being built.")
        gr.Markdown(asset_status(settings))
    return app
