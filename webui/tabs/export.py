"""The Export tab: a voice to ONNX (spec §9.6), and voice bundles (a zip: model + index + voice.json) out and in.

Thin adapters over :mod:`webui.ckpt_actions`; library errors become ``gr.Error``.
The ONNX file and bundles are written into ``weights/`` (the ONNX box takes a
file name, not a path); the import URL box takes public http(s) URLs only,
files come from the upload box.
"""

from __future__ import annotations

import gradio as gr

from webui import ckpt_actions
from webui.context import UIContext
from webui.tabs.ckpt import guarded, voice_dropdown
from webui.voices import list_index_choices, list_voices


def build(ctx: UIContext) -> None:
    """Build the Export tab inside the caller's ``gr.Tab``."""
    t = ctx.t
    gr.Markdown(t("export.intro"))
    with gr.Group():
        gr.Markdown(t("export.onnx_title"))
        with gr.Row():
            onnx_voice = voice_dropdown(ctx, "export.voice", "export-onnx-voice")
            onnx_output = gr.Textbox(
                label=t("export.onnx_output"), placeholder=t("export.onnx_output_hint"), elem_id="export-onnx-output"
            )
            onnx_overwrite = gr.Checkbox(value=False, label=t("export.overwrite"))
            onnx_btn = gr.Button(t("export.onnx_button"), variant="primary", elem_id="export-onnx")
        with gr.Row():
            onnx_out = gr.Textbox(label=t("export.output"), lines=6, interactive=False, elem_id="export-onnx-out")
            onnx_file = gr.File(label=t("export.file"), interactive=False, elem_id="export-onnx-file")
    with gr.Group():
        gr.Markdown(t("export.bundle_title"))
        with gr.Row():
            bundle_voice = voice_dropdown(ctx, "export.voice", "export-bundle-voice")
            bundle_index = gr.Dropdown(
                _index_choices(ctx),
                value="auto",
                allow_custom_value=True,
                label=t("export.index"),
                elem_id="export-bundle-index",
            )
            bundle_overwrite = gr.Checkbox(value=False, label=t("export.overwrite"))
            bundle_btn = gr.Button(t("export.bundle_button"), variant="primary", elem_id="export-bundle")
        with gr.Row():
            bundle_out = gr.Textbox(label=t("export.output"), interactive=False, elem_id="export-bundle-out")
            bundle_file = gr.File(label=t("export.file"), interactive=False, elem_id="export-bundle-file")
    with gr.Group():
        gr.Markdown(t("export.import_title"))
        with gr.Row():
            upload = gr.File(
                label=t("export.upload"), file_types=[".zip"], type="filepath", elem_id="export-import-file"
            )
            with gr.Column():
                url = gr.Textbox(label=t("export.url"), placeholder="https://…/voice.zip", elem_id="export-import-url")
                import_name = gr.Textbox(
                    label=t("export.import_name"),
                    placeholder=t("export.import_name_hint"),
                    elem_id="export-import-name",
                )
                import_overwrite = gr.Checkbox(value=False, label=t("export.overwrite"))
                import_btn = gr.Button(t("export.import_button"), variant="primary", elem_id="export-import")
        import_out = gr.Textbox(label=t("export.output"), interactive=False, elem_id="export-import-out")
    refresh_btn = gr.Button(t("export.refresh"), elem_id="export-refresh")

    onnx_btn.click(
        _with_file(guarded(ctx, ckpt_actions.export_onnx)),
        [onnx_voice, onnx_output, onnx_overwrite],
        [onnx_out, onnx_file],
        api_name="export_onnx",
    )
    bundle_btn.click(
        _with_file(guarded(ctx, ckpt_actions.make_bundle)),
        [bundle_voice, bundle_index, bundle_overwrite],
        [bundle_out, bundle_file],
        api_name="export_bundle",
    )
    import_btn.click(
        guarded(ctx, ckpt_actions.import_bundle),
        [upload, url, import_name, import_overwrite],
        import_out,
        api_name="import_bundle",
    )
    refresh_btn.click(
        lambda: _refreshed(ctx),
        None,
        [onnx_voice, bundle_voice, bundle_index],
        show_progress="hidden",
        api_visibility="private",
    )


def _index_choices(ctx: UIContext) -> list[tuple[str, str]]:
    """ "auto" (the index paired with the voice), "none", then every index found."""
    found = list_index_choices(ctx.settings, ctx.t("export.index_none"))
    return [(ctx.t("export.index_auto"), "auto"), *found]


def _with_file(handler):
    def run(request: gr.Request, *values):
        text, path = handler(request, *values)
        return text, str(path)

    return run


def _refreshed(ctx: UIContext) -> tuple:
    voices = list_voices(ctx.settings)
    return gr.update(choices=voices), gr.update(choices=voices), gr.update(choices=_index_choices(ctx))
