"""The ckpt tab (spec §9.5): merge two voices, show and change a voice's info, extract a voice from a G_ checkpoint.

Thin adapters over :mod:`webui.ckpt_actions` (which calls :mod:`infer.ckpt`):
library errors become ``gr.Error`` here.  Save names are file names (they go
into ``weights/``); typed paths must be inside the studio's folders.  Rate, pitch and version of a
merge come from the voices themselves; for an extraction they are filled in
from the checkpoint's experiment folder.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from config import Settings
from infer.ckpt import OutputExistsError, VoiceExistsError
from infer.models.config import FEATURE_DIMS
from webui import ckpt_actions
from webui.context import UIContext
from webui.errors import user_error
from webui.tab_texts import say
from webui.train_view import SAMPLE_RATES
from webui.voices import list_voices


def guarded(ctx: UIContext, action: Callable[..., str]) -> Callable[..., str]:
    """``action(settings, say, *values)`` as a handler: its ``ValueError``/``OSError`` become ``gr.Error``.

    "Already exists" errors are reworded to name the tab's checkbox instead of the library's argument.
    """

    def handler(request: gr.Request, *values):  # Gradio fills a positional gr.Request, then the inputs
        try:
            return action(ctx.settings, lambda key, **v: say(ctx, key, request, **v), *values)
        except OutputExistsError as exc:
            raise user_error(say(ctx, "ckpt.exists", request, path=str(exc.path))) from exc
        except VoiceExistsError as exc:
            files = ", ".join(str(p) for p in exc.existing)
            raise user_error(say(ctx, "export.voice_exists", request, name=exc.name, files=files)) from exc
        except (ValueError, OSError) as exc:
            raise user_error(str(exc)) from exc

    return handler


def voice_dropdown(ctx: UIContext, label_key: str, elem_id: str) -> gr.Dropdown:
    """A voice picker over the weights folder that also takes a typed path (G_*.pth, other folders)."""
    return gr.Dropdown(
        list_voices(ctx.settings), value=None, label=ctx.t(label_key), allow_custom_value=True, elem_id=elem_id
    )


def build(ctx: UIContext) -> None:
    """Build the ckpt tab inside the caller's ``gr.Tab``."""
    t, settings = ctx.t, ctx.settings
    gr.Markdown(t("ckpt.intro"))
    with gr.Group():
        gr.Markdown(t("ckpt.merge_title"))
        with gr.Row():
            merge_a = voice_dropdown(ctx, "ckpt.voice_a", "ckpt-merge-a")
            merge_b = voice_dropdown(ctx, "ckpt.voice_b", "ckpt-merge-b")
            weight_a = gr.Slider(0, 1, step=0.05, value=0.5, label=t("ckpt.weight_a"), elem_id="ckpt-merge-weight")
        with gr.Row():
            merge_info = gr.Textbox(label=t("ckpt.info_text"), elem_id="ckpt-merge-info")
            merge_name = gr.Textbox(
                label=t("ckpt.save_name"), placeholder=t("ckpt.save_name_hint"), elem_id="ckpt-merge-name"
            )
            merge_overwrite = gr.Checkbox(value=False, label=t("ckpt.overwrite"))
            merge_btn = gr.Button(t("ckpt.merge"), variant="primary", elem_id="ckpt-merge")
        merge_out = gr.Textbox(label=t("ckpt.output"), interactive=False, elem_id="ckpt-merge-out")
    with gr.Group():
        gr.Markdown(t("ckpt.info_title"))
        with gr.Row():
            info_voice = voice_dropdown(ctx, "ckpt.voice", "ckpt-info-voice")
            show_btn = gr.Button(t("ckpt.show"), elem_id="ckpt-show")
        with gr.Row():
            new_info = gr.Textbox(label=t("ckpt.new_info"), elem_id="ckpt-new-info")
            info_name = gr.Textbox(
                label=t("ckpt.modify_name"), placeholder=t("ckpt.modify_name_hint"), elem_id="ckpt-info-name"
            )
            info_overwrite = gr.Checkbox(value=False, label=t("ckpt.overwrite"))
            modify_btn = gr.Button(t("ckpt.modify"), variant="primary", elem_id="ckpt-modify")
        info_out = gr.Textbox(label=t("ckpt.output"), lines=6, interactive=False, elem_id="ckpt-info-out")
    with gr.Group():
        gr.Markdown(t("ckpt.extract_title"))
        with gr.Row():
            checkpoint = gr.Dropdown(
                ckpt_actions.list_checkpoints(settings),
                value=None,
                allow_custom_value=True,
                label=t("ckpt.checkpoint"),
                elem_id="ckpt-extract-path",
            )
            refresh_btn = gr.Button(t("ckpt.refresh"), elem_id="ckpt-refresh", scale=0)
            extract_name = gr.Textbox(
                label=t("ckpt.save_name"), placeholder=t("ckpt.extract_name_hint"), elem_id="ckpt-extract-name"
            )
        with gr.Row():
            extract_sr = gr.Radio(
                list(SAMPLE_RATES), value="40k", label=t("ckpt.sample_rate"), elem_id="ckpt-extract-sr"
            )
            extract_f0 = gr.Checkbox(value=True, label=t("ckpt.use_f0"), interactive=False, elem_id="ckpt-extract-f0")
            extract_version = gr.Radio(
                list(FEATURE_DIMS), value="v2", label=t("ckpt.version"), elem_id="ckpt-extract-version"
            )
            extract_info = gr.Textbox(label=t("ckpt.info_text"), elem_id="ckpt-extract-info")
            extract_overwrite = gr.Checkbox(value=False, label=t("ckpt.overwrite"))
            extract_btn = gr.Button(t("ckpt.extract"), variant="primary", elem_id="ckpt-extract")
        extract_out = gr.Textbox(label=t("ckpt.output"), interactive=False, elem_id="ckpt-extract-out")

    merge_btn.click(
        guarded(ctx, ckpt_actions.merge),
        [merge_a, merge_b, weight_a, merge_info, merge_name, merge_overwrite],
        merge_out,
        api_name="ckpt_merge",
    )
    show_btn.click(
        guarded(ctx, lambda s, _say, voice: ckpt_actions.show_info(s, voice)),
        info_voice,
        info_out,
        api_name="ckpt_show",
    )
    modify_btn.click(
        guarded(ctx, ckpt_actions.modify_info),
        [info_voice, new_info, info_name, info_overwrite],
        info_out,
        api_name="ckpt_modify",
    )
    extract_btn.click(
        guarded(ctx, ckpt_actions.extract),
        [checkpoint, extract_name, extract_sr, extract_version, extract_info, extract_overwrite],
        extract_out,
        api_name="ckpt_extract",
    )
    checkpoint.change(
        lambda choice: fill_from_experiment(choice, settings),
        checkpoint,
        [extract_sr, extract_version, extract_f0],
        show_progress="hidden",
        api_visibility="private",
    )
    refresh_btn.click(
        lambda: _refreshed(ctx),
        None,
        [checkpoint, merge_a, merge_b, info_voice],
        show_progress="hidden",
        api_visibility="private",
    )


def fill_from_experiment(choice: str | None, settings: Settings | None = None) -> tuple:
    """Extract form updates (rate, version, pitch) from the checkpoint's experiment; unknown ones are left as they are.

    With ``settings``, a checkpoint outside the folders the server reads is an unknown one.
    """
    found = ckpt_actions.checkpoint_settings(choice, settings)
    return (
        gr.update(value=found.sample_rate) if found.sample_rate in SAMPLE_RATES else gr.skip(),
        gr.update(value=found.version) if found.version in FEATURE_DIMS else gr.skip(),
        gr.update(value=found.use_f0) if found.use_f0 is not None else gr.skip(),
    )


def _refreshed(ctx: UIContext) -> tuple:
    voices = list_voices(ctx.settings)
    return (
        gr.update(choices=ckpt_actions.list_checkpoints(ctx.settings)),
        *(gr.update(choices=voices) for _ in range(3)),
    )
