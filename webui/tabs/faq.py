"""FAQ tab: the project's own answers to the questions RVC users ask most (``i18n/locales/<lang>/faq.md``)."""

from __future__ import annotations

import gradio as gr

from webui.context import UIContext


def build(ctx: UIContext) -> None:
    """Render the FAQ in the UI language (called inside ``gr.Tab``)."""
    gr.Markdown(ctx.t("faq.md"), elem_id="faq-text")
