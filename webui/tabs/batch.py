"""The Batch sub-tab of Convert: a folder (or uploaded files) converted into an output folder.

The conversion runs in a worker thread while the handler streams its log,
so the page shows each file as soon as it is done.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import gradio as gr

from infer.audio import SUPPORTED_OUTPUT_FORMATS
from infer.batch import BatchItem, summarize
from webui.conversion import BatchRequest, batch_inputs, chosen_index, make_params, output_folder, run_batch
from webui.errors import shown_as_gr_error, user_error
from webui.paths import PathPolicy
from webui.studio_context import StudioContext
from webui.voices import voice_file

if TYPE_CHECKING:
    from webui.tabs.convert import ConvertControls

LOG_REFRESH_SECONDS = 0.5


def build(ctx: StudioContext, controls: ConvertControls) -> None:
    """Lay out the sub-tab; it uses the voice and settings of ``controls``."""
    t = ctx.t
    gr.Markdown(t("batch.note"))
    with gr.Row():
        folder = gr.Textbox(
            label=t("batch.input_folder"), placeholder=t("batch.input_folder_placeholder"), elem_id="batch-input-folder"
        )
        files = gr.File(
            file_count="multiple", type="filepath", label=t("batch.input_files"), elem_id="batch-input-files"
        )
    with gr.Row():
        out_dir = gr.Textbox(
            "opt", label=t("batch.output_folder"), info=t("batch.output_folder_info"), elem_id="batch-output-folder"
        )
        fmt = gr.Radio(list(SUPPORTED_OUTPUT_FORMATS), value="wav", label=t("batch.format"), elem_id="batch-format")
        overwrite = gr.Checkbox(False, label=t("batch.overwrite"), elem_id="batch-overwrite")
    run = gr.Button(t("batch.convert"), variant="primary", elem_id="batch-button")
    log = gr.Textbox(
        label=t("batch.log"), lines=10, max_lines=30, interactive=False, autoscroll=True, elem_id="batch-log"
    )

    def convert_batch(
        voice,
        input_folder,
        input_files,
        output_dir,
        output_format,
        overwrite,
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
    ):
        """Convert every audio file of a folder (or the uploaded files); streams one log line per file."""
        if not voice:
            raise user_error(ctx.text("convert.need_voice", request))
        policy = PathPolicy(ctx.settings)
        with shown_as_gr_error():
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
                seed=seed,
            )
            job = BatchRequest(
                voice_file(ctx.settings, voice),
                batch_inputs(input_folder, input_files, policy),
                output_folder(output_dir, ctx.settings),
                output_format,
                bool(overwrite),
                chosen_index(index, params.index_rate, policy),
                params,
            )
        yield from _stream(ctx, job, request)

    run.click(
        convert_batch,
        inputs=[controls.voice, folder, files, out_dir, fmt, overwrite, *controls.settings()],
        outputs=[log],
        api_name="convert_batch",
        concurrency_limit=1,
        concurrency_id="batch",
    )


def _stream(ctx: StudioContext, job: BatchRequest, request: gr.Request):
    """Run the batch in a thread; yield the log (done files, then the current progress line) until it ends."""
    lines: list[str] = []
    current = [""]
    outcome: dict[str, object] = {}

    def item_line(item: BatchItem) -> None:
        status = ctx.text(f"batch.status_{item.status}", request)
        lines.append(f"{item.input.name}: {status}" + (f" — {item.message}" if item.message else ""))

    def work() -> None:
        try:
            outcome["items"] = run_batch(
                job,
                ctx.cache,
                ctx.settings,
                progress=lambda _f, message: current.__setitem__(0, message),
                on_item=item_line,
            )
        except Exception as exc:  # reported below as gr.Error
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="batch-conversion", daemon=True)
    worker.start()
    yield ctx.text("batch.started", request, count=len(job.inputs), folder=job.output_dir)
    while worker.is_alive():
        worker.join(LOG_REFRESH_SECONDS)
        yield "\n".join([*lines, current[0]] if worker.is_alive() else lines)
    if "error" in outcome:
        with shown_as_gr_error():
            raise outcome["error"]  # type: ignore[misc]
    counts = summarize(outcome["items"])  # type: ignore[arg-type]
    yield "\n".join([*lines, ctx.text("batch.summary", request, folder=job.output_dir, **counts)])
