"""Convert tab: the voice row, the conversion settings, and the Single / Batch sub-tabs.

Each browser session keeps its own voice selection (widget values are per
session); models come from the shared, thread-safe ``ctx.cache``.  The voice
and index lists refresh themselves when files appear (RVC FAQ Q3).
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from infer.f0 import F0_METHODS
from webui.conversion import (
    SingleRequest,
    chosen_index,
    chosen_source,
    make_params,
    run_single,
    uploads_named_by_name,
)
from webui.errors import shown_as_gr_error, user_error
from webui.paths import PathPolicy
from webui.studio_context import StudioContext
from webui.tabs import batch
from webui.voices import list_index_choices, list_voices, paired_index, summarize_voice, voice_file

RESAMPLE_RATES = (16000, 22050, 24000, 32000, 40000, 44100, 48000)
VOICE_POLL_SECONDS = 5.0
CONVERSION_CONCURRENCY = 4  # conversions of different sessions run side by side


@dataclass
class ConvertControls:
    """The widgets the Single and Batch sub-tabs share."""

    voice: gr.Dropdown
    speaker: gr.Number
    key: gr.Number
    auto_key: gr.Checkbox
    f0_method: gr.Radio
    index: gr.Dropdown
    index_rate: gr.Slider
    filter_radius: gr.Slider
    resample: gr.Dropdown
    rms_mix: gr.Slider
    protect: gr.Slider
    f0_curve: gr.File
    seed: gr.Number

    def settings(self) -> list[gr.components.Component]:
        """The inputs after the voice, in the order of :func:`webui.conversion.make_params`' arguments."""
        return [
            self.speaker,
            self.key,
            self.auto_key,
            self.f0_method,
            self.index,
            self.index_rate,
            self.filter_radius,
            self.resample,
            self.rms_mix,
            self.protect,
            self.f0_curve,
            self.seed,
        ]


def build(ctx: StudioContext) -> None:
    """Lay out the tab and wire its events (called inside ``gr.Tab``)."""
    controls = _build_controls(ctx)
    with gr.Tabs():
        with gr.Tab(ctx.t("convert.single"), id="single", elem_id="convert-single-tab"):
            _build_single(ctx, controls)
        with gr.Tab(ctx.t("convert.batch"), id="batch", elem_id="convert-batch-tab"):
            batch.build(ctx, controls)


def _build_controls(ctx: StudioContext) -> ConvertControls:
    t, settings = ctx.t, ctx.settings
    with gr.Row():
        voice = gr.Dropdown(
            list_voices(settings),
            value=None,
            allow_custom_value=True,
            label=t("convert.voice"),
            info=t("convert.voice_info"),
            scale=3,
            elem_id="convert-voice",
        )
        speaker = gr.Number(0, precision=0, minimum=0, label=t("convert.speaker"), scale=1, elem_id="convert-speaker")
        refresh = gr.Button(t("convert.refresh"), scale=1, elem_id="convert-refresh")
    summary = gr.Markdown(t("convert.no_voice"), elem_id="convert-voice-summary")
    with gr.Row():
        with gr.Column():
            with gr.Group() as pitch_group:
                key = gr.Number(
                    0,
                    minimum=-48,
                    maximum=48,
                    step=1,
                    label=t("convert.key"),
                    info=t("convert.key_info"),
                    elem_id="convert-key",
                )
                auto_key = gr.Checkbox(False, label=t("convert.auto_key"), info=t("convert.auto_key_info"))
                f0_method = gr.Radio(
                    list(F0_METHODS), value="rmvpe", label=t("convert.f0_method"), info=t("convert.f0_method_info")
                )
                filter_radius = gr.Slider(
                    0, 7, 3, step=1, label=t("convert.filter_radius"), info=t("convert.filter_radius_info")
                )
                protect = gr.Slider(0, 0.5, 0.33, step=0.01, label=t("convert.protect"), info=t("convert.protect_info"))
        with gr.Column():
            index = gr.Dropdown(
                list_index_choices(settings, t("convert.no_index")),
                value="",
                allow_custom_value=True,
                label=t("convert.index"),
                info=t("convert.index_info"),
                elem_id="convert-index",
            )
            index_rate = gr.Slider(
                0, 1, 0.75, step=0.01, label=t("convert.index_rate"), info=t("convert.index_rate_info")
            )
            rms_mix = gr.Slider(0, 1, 0.25, step=0.01, label=t("convert.rms_mix"), info=t("convert.rms_mix_info"))
            resample = gr.Dropdown(
                [(t("convert.resample_keep"), 0)] + [(f"{rate} Hz", rate) for rate in RESAMPLE_RATES],
                value=0,
                label=t("convert.resample"),
                info=t("convert.resample_info"),
            )
    with gr.Accordion(t("convert.advanced"), open=False, elem_id="convert-advanced"):
        with gr.Row():
            f0_curve = gr.File(file_types=[".txt", ".csv"], type="filepath", label=t("convert.f0_curve"))
            seed = gr.Number(
                None, precision=0, label=t("convert.seed"), info=t("convert.seed_info"), elem_id="convert-seed"
            )
    controls = ConvertControls(
        voice,
        speaker,
        key,
        auto_key,
        f0_method,
        index,
        index_rate,
        filter_radius,
        resample,
        rms_mix,
        protect,
        f0_curve,
        seed,
    )
    _wire_voice_events(ctx, controls, refresh, summary, pitch_group)
    return controls


def _wire_voice_events(
    ctx: StudioContext, controls: ConvertControls, refresh: gr.Button, summary: gr.Markdown, pitch_group: gr.Group
) -> None:
    settings = ctx.settings

    def listing() -> tuple[tuple[str, ...], tuple[str, ...]]:
        indexes = list_index_choices(settings, "")
        return tuple(list_voices(settings)), tuple(path for _, path in indexes)

    def refreshed(state: object) -> tuple[object, object, object]:
        current = listing()
        if current == state:
            return gr.skip(), gr.skip(), gr.skip()
        return (
            gr.Dropdown(choices=list(current[0])),
            gr.Dropdown(choices=list_index_choices(settings, ctx.t("convert.no_index"))),
            current,
        )

    def voice_chosen(name: str | None, speaker: float | None, request: gr.Request):
        if not name:
            return gr.Number(maximum=None, info=None), gr.Group(visible=True), gr.skip(), ctx.t("convert.no_voice")
        with shown_as_gr_error():
            path = voice_file(settings, name)
            voice = summarize_voice(ctx.cache, path)
        last = voice.n_speakers - 1
        pitch = ctx.text("convert.with_pitch" if voice.use_f0 else "convert.without_pitch", request)
        line = ctx.text(
            "convert.voice_summary",
            request,
            name=voice.name,
            version=voice.version,
            rate=voice.sample_rate,
            pitch=pitch,
            speakers=voice.n_speakers,
        )
        return (
            gr.Number(
                value=min(max(int(speaker or 0), 0), last),
                maximum=last,
                info=ctx.text("convert.speaker_range", request, last=last),
            ),
            gr.Group(visible=voice.use_f0),
            gr.Dropdown(
                choices=list_index_choices(settings, ctx.t("convert.no_index")), value=paired_index(settings, path)
            ),
            line,
        )

    known = gr.State(None)  # the listing this session shows; None: refresh at the first tick
    lists = [controls.voice, controls.index, known]
    refresh.click(refreshed, inputs=[gr.State(None)], outputs=lists, api_visibility="private")
    gr.Timer(VOICE_POLL_SECONDS).tick(
        refreshed, inputs=[known], outputs=lists, concurrency_limit=None, api_visibility="private"
    )
    controls.voice.change(
        voice_chosen,
        inputs=[controls.voice, controls.speaker],
        outputs=[controls.speaker, pitch_group, controls.index, summary],
        api_visibility="private",
    )


def _build_single(ctx: StudioContext, controls: ConvertControls) -> None:
    t = ctx.t
    with gr.Row():
        with gr.Column():
            audio_in = gr.Audio(
                type="filepath",
                sources=["upload", "microphone"],
                label=t("convert.input_audio"),
                elem_id="convert-input-audio",
            )
            path_in = gr.Textbox(
                label=t("convert.input_path"),
                placeholder=t("convert.input_path_placeholder"),
                elem_id="convert-input-path",
            )
            run = gr.Button(t("convert.convert"), variant="primary", elem_id="convert-button")
        with gr.Column():
            info = gr.Textbox(label=t("convert.output_info"), lines=5, interactive=False, elem_id="convert-info")
            audio_out = gr.Audio(
                type="filepath", label=t("convert.output_audio"), interactive=False, elem_id="convert-output-audio"
            )
            timing = gr.Textbox(label=t("convert.timing"), interactive=False, elem_id="convert-timing")

    def convert(
        voice,
        input_audio,
        input_path,
        speaker_id,
        key,
        auto_key,
        f0_method,
        index,
        index_rate,
        filter_radius,
        resample_sr,
        rms_mix_rate,
        protect,
        f0_curve,
        seed,
        request: gr.Request,
        progress=gr.Progress(),
    ):
        """Convert one file with a voice; returns (RVC's info text, the converted WAV, a timing line)."""
        if not voice:
            raise user_error(ctx.text("convert.need_voice", request))
        if not input_audio and not (input_path or "").strip():
            raise user_error(ctx.text("convert.need_input", request))
        policy = PathPolicy(ctx.settings)
        with shown_as_gr_error(), uploads_named_by_name(input_audio, f0_curve):
            params = make_params(
                speaker_id=speaker_id,
                key=key,
                auto_key=auto_key,
                f0_method=f0_method,
                index_rate=index_rate,
                filter_radius=filter_radius,
                resample_sr=resample_sr,
                rms_mix_rate=rms_mix_rate,
                protect=protect,
                f0_curve=f0_curve,
                seed=seed,
            )
            job = SingleRequest(
                voice_file(ctx.settings, voice),
                chosen_source(input_audio, input_path, policy),
                chosen_index(index, params.index_rate, policy),
                params,
            )
            outcome = run_single(job, ctx.cache, ctx.settings, ctx.outputs, progress=lambda f, m: progress(f, desc=m))
        result, times = outcome.result, outcome.result.times
        line = ctx.text(
            "convert.timing_line",
            request,
            audio=result.input_seconds,
            elapsed=outcome.elapsed,
            speed=result.input_seconds / max(outcome.elapsed, 1e-9),
            f0=times.f0,
            features=times.features + times.retrieval,
            synthesis=times.synthesis,
        )
        return result.info_text(), str(outcome.output), line

    run.click(
        convert,
        inputs=[controls.voice, audio_in, path_in, *controls.settings()],
        outputs=[info, audio_out, timing],
        api_name="convert",
        concurrency_limit=CONVERSION_CONCURRENCY,
        concurrency_id="conversion",
    )
