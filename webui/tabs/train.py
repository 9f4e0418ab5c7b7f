"""The Train tab (spec §9.4): one button per step and one-click, Stop and Resume, live log, progress, losses.

Layout only; behaviour is in :mod:`webui.train_handlers`.  Each step runs as
``python -m train <step>`` in its own process (the command is shown in the
message window), watched by a per-browser timer.
"""

from __future__ import annotations

import atexit
import functools

import gradio as gr
import torch

from train.commands import PRECISIONS, TRAIN_F0_METHODS, VERSIONS
from webui.context import UIContext
from webui.jobs import JobRunner
from webui.train_handlers import TrainHandlers
from webui.train_view import SAMPLE_RATES, default_processes, pretrained_defaults

DEVICES = ("auto", "cpu", "cuda", "mps")


def gpu_summary() -> tuple[str, str, int]:
    """(GPU list text, default GPU ids "0-1", default batch size): RVC's rule, min GPU memory GB // 2."""
    if not torch.cuda.is_available():
        return "", "", 4
    lines, memories = [], []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        memories.append(int(props.total_memory / 1024**3 + 0.4))
        lines.append(f"{index}\t{props.name}\t{memories[-1]} GB")
    ids = "-".join(str(i) for i in range(len(lines)))
    return "\n".join(lines), ids, max(1, min(memories) // 2)


def build(ctx: UIContext) -> None:
    """Build the Train tab inside the caller's ``gr.Tab``."""
    t, settings = ctx.t, ctx.settings
    runner = getattr(ctx, "jobs", None)
    if runner is None:  # one runner per built app (= per server); stopped at exit
        runner = JobRunner()
        atexit.register(runner.shutdown)
    handlers = TrainHandlers(ctx, runner)
    gpu_info, gpu_ids, batch_default = gpu_summary()
    g_default, d_default = pretrained_defaults(settings.assets_dir, "v2", "40k", True)

    gr.Markdown(t("train.intro"))
    with gr.Row():
        name = gr.Textbox(label=t("train.name"), value="mi-test", elem_id="train-name")
        sample_rate = gr.Radio(list(SAMPLE_RATES), value="40k", label=t("train.sample_rate"), elem_id="train-sr")
        use_f0 = gr.Checkbox(value=True, label=t("train.use_f0"), elem_id="train-f0")
        version = gr.Radio(list(VERSIONS), value="v2", label=t("train.version"), elem_id="train-version")
        processes = gr.Slider(
            1,
            max(1, settings.n_cpu),
            step=1,
            value=default_processes(settings.n_cpu),
            label=t("train.processes"),
            elem_id="train-processes",
        )
    with gr.Group():
        gr.Markdown(t("train.step1"))
        with gr.Row():
            dataset = gr.Textbox(label=t("train.dataset"), placeholder=t("train.dataset_hint"), elem_id="train-dataset")
            speaker_id = gr.Slider(0, 4, step=1, value=0, label=t("train.speaker_id"), elem_id="train-speaker")
            preprocess_btn = gr.Button(t("train.preprocess"), variant="primary", elem_id="train-preprocess")
    with gr.Group():
        gr.Markdown(t("train.step2"))
        with gr.Row():
            gpus = gr.Textbox(label=t("train.gpus"), value=gpu_ids, elem_id="train-gpus")
            gr.Textbox(label=t("train.gpu_info"), value=gpu_info or t("train.no_gpu"), interactive=False, lines=2)
            f0_method = gr.Radio(
                list(TRAIN_F0_METHODS),
                value="rmvpe_gpu" if gpu_ids else "rmvpe",
                label=t("train.f0_method"),
                elem_id="train-f0-method",
            )
            extract_btn = gr.Button(t("train.extract"), variant="primary", elem_id="train-extract")
    with gr.Group():
        gr.Markdown(t("train.step3"))
        with gr.Row():
            save_every = gr.Slider(1, 50, step=1, value=5, label=t("train.save_every"), elem_id="train-save-every")
            epochs = gr.Slider(1, 1000, step=1, value=20, label=t("train.epochs"), elem_id="train-epochs")
            batch_size = gr.Slider(
                1, 40, step=1, value=batch_default, label=t("train.batch_size"), elem_id="train-batch"
            )
            latest_only = gr.Checkbox(value=False, label=t("train.latest_only"), elem_id="train-latest-only")
            small_models = gr.Checkbox(value=False, label=t("train.small_models"), elem_id="train-small-models")
        with gr.Row():
            pretrained_g = gr.Textbox(label=t("train.pretrained_g"), value=g_default, elem_id="train-pretrained-g")
            pretrained_d = gr.Textbox(label=t("train.pretrained_d"), value=d_default, elem_id="train-pretrained-d")
        with gr.Accordion(t("train.advanced"), open=False, elem_id="train-advanced"):
            with gr.Row():
                device = gr.Dropdown(
                    list(DEVICES),
                    value="auto",
                    label=t("train.device"),
                    allow_custom_value=True,
                    elem_id="train-device",
                )
                precision = gr.Radio(list(PRECISIONS), value="auto", label=t("train.precision"))
                num_workers = gr.Slider(0, 8, step=1, value=2, label=t("train.num_workers"), elem_id="train-workers")
            with gr.Row():
                overrides = gr.Textbox(
                    label=t("train.config_overrides"),
                    placeholder='{"model": {}, "train": {}}',
                    elem_id="train-overrides",
                )
                disc_divisors = gr.Textbox(label=t("train.disc_divisors"), placeholder="1 1", elem_id="train-disc")
        with gr.Row():
            fit_btn = gr.Button(t("train.fit"), variant="primary", elem_id="train-fit")
            index_btn = gr.Button(t("train.index"), variant="primary", elem_id="train-index")
            all_btn = gr.Button(t("train.one_click"), variant="primary", elem_id="train-all")
            resume_btn = gr.Button(t("train.resume"), elem_id="train-resume")
            stop_btn = gr.Button(t("train.stop"), variant="stop", elem_id="train-stop")
    progress = gr.HTML(elem_id="train-progress")
    message = gr.Textbox(label=t("train.message"), lines=4, max_lines=12, interactive=False, elem_id="train-message")
    with gr.Row():
        log = gr.Textbox(
            label=t("train.log"), lines=14, max_lines=14, autoscroll=True, interactive=False, elem_id="train-log"
        )
        plot = gr.LinePlot(
            x="step",
            y="value",
            color="loss",
            label=t("train.losses"),
            x_title=t("train.plot_step"),
            y_title=t("train.plot_loss"),
            height=320,
            elem_id="train-plot",
        )
    session = gr.State(None)
    timer = gr.Timer(1.0, active=False)

    form = [
        name,
        sample_rate,
        use_f0,
        version,
        processes,
        dataset,
        speaker_id,
        f0_method,
        gpus,
        save_every,
        epochs,
        batch_size,
        latest_only,
        small_models,
        pretrained_g,
        pretrained_d,
        device,
        precision,
        num_workers,
        overrides,
        disc_divisors,
    ]
    watched = [session, message, progress, log, plot, timer]
    for button, step in (
        (preprocess_btn, "preprocess"),
        (extract_btn, "extract"),
        (fit_btn, "fit"),
        (index_btn, "index"),
        (all_btn, "all"),
        (resume_btn, "resume"),
    ):
        button.click(
            _starter(handlers, step), [session, *form], watched, api_name=f"train_{step}", concurrency_limit=None
        )
    stop_btn.click(handlers.stop, [name, session], message, api_name="train_stop", concurrency_limit=None)
    timer.tick(
        handlers.tick, session, watched, show_progress="hidden", concurrency_limit=None, api_visibility="private"
    )
    gr.on(
        [name.submit, name.blur],
        handlers.attach,
        [name, session],
        [*watched, sample_rate, version, use_f0],
        show_progress="hidden",
        api_visibility="private",
    )
    for control in (sample_rate, version, use_f0):
        control.change(
            functools.partial(_pretrained, settings.assets_dir),
            [version, sample_rate, use_f0],
            [pretrained_g, pretrained_d],
            show_progress="hidden",
            api_visibility="private",
        )
    use_f0.change(
        lambda on: gr.update(visible=bool(on)), use_f0, f0_method, show_progress="hidden", api_visibility="private"
    )


def _starter(handlers: TrainHandlers, step: str):
    def start(request: gr.Request, session, *values):  # Gradio fills a positional gr.Request, then the inputs
        return handlers.start(step, session, *values, request=request)

    return start


def _pretrained(assets_dir, version: str, sample_rate: str, use_f0: bool) -> tuple[str, str]:
    return pretrained_defaults(assets_dir, version, sample_rate, bool(use_f0))
