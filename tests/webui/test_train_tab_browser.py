"""The Train tab in a real browser: one-click training of a tiny voice, live log and loss plot, Stop, Resume;
then the ckpt tab extracts a voice from the checkpoint, and the Export tab exports it to ONNX.

The dataset is espeak-ng speech made here; the models are tiny (the installation's
tiny content encoder, a tiny generator via the config overrides, a narrowed
discriminator), so a training step takes a fraction of a second on the CPU.
"""

from __future__ import annotations

import json
import time

import pytest

from infer import load_voice
from infer.checkpoints import read_checkpoint
from tests.helpers import HUBERT_EMBED_DIM, make_speech

pytestmark = pytest.mark.browser

EXPERIMENT = "tinyui"
TINY_OVERRIDES = {
    "model": {
        "inter_channels": 8,
        "hidden_channels": 8,
        "filter_channels": 16,
        "n_layers": 1,
        "upsample_initial_channel": 32,
        "gin_channels": 8,
        "spk_embed_dim": 4,
        "feature_dim": HUBERT_EMBED_DIM,
    },
    "train": {"segment_size": 1280, "batch_size": 2, "log_interval": 1},
}
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore every single morning.",
    "Peter Piper picked a peck of pickled peppers.",
)
STEP_TIMEOUT = 240_000  # ms: a step starts a Python process that imports torch, on a busy machine


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recordings")
    for i, text in enumerate(SENTENCES):
        make_speech(folder / f"take {i}.wav", text)
    return folder


def textbox(page, elem_id: str):
    return page.locator(f"#{elem_id}").get_by_role("textbox")


def set_number(page, elem_id: str, value: int) -> None:
    field = page.locator(f"#{elem_id} input[type=number]")
    field.fill(str(value))
    field.press("Enter")


def log_text(page) -> str:
    return page.locator("#train-log textarea").input_value()


def plot_lines(page) -> list[str]:
    return page.locator("#train-plot g.mark-line path").evaluate_all("els => els.map(e => e.getAttribute('d'))")


def wait_for(condition, timeout_s: float, what: str, page=None) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            log = log_text(page)[-3000:] if page is not None else ""
            pytest.fail(f"timed out waiting for {what}; log:\n{log}")
        time.sleep(0.5)


def wait_for_value(page, selector: str, text: str, timeout_s: float = 60) -> None:
    """Wait until the text box at ``selector`` holds ``text`` (a textarea's value is not its text content)."""
    box = page.locator(selector)
    wait_for(lambda: text in box.input_value(), timeout_s, f"{text!r} in {selector}", page)


def progress_state(page) -> str | None:
    return page.locator("#train-progress .rvc-progress").get_attribute("data-state")


def test_train_stop_resume_extract_export(start_server, installation, dataset, new_page, artifacts_dir):
    from playwright.sync_api import expect

    server = start_server(env={"RVC_DEVICE": "cpu", "RVC_INPUT_DIRS": str(dataset)})  # as --allow-path
    page = new_page(server)
    page.get_by_role("tab", name="Train").click()
    textbox(page, "train-name").fill(EXPERIMENT)
    textbox(page, "train-dataset").fill(f'"{dataset}"')  # pasted with quotes: they are stripped
    page.locator("#train-sr").get_by_label("32k").check()
    page.locator("#train-f0-method").get_by_label("pm", exact=True).check()
    set_number(page, "train-epochs", 1000)
    set_number(page, "train-save-every", 50)
    set_number(page, "train-batch", 2)
    page.locator("#train-advanced").get_by_text("Advanced", exact=True).click()
    set_number(page, "train-workers", 0)
    textbox(page, "train-overrides").fill(json.dumps(TINY_OVERRIDES))
    textbox(page, "train-disc").fill("16 32")
    page.locator("#train-all").click()

    message = "#train-message textarea"
    wait_for_value(page, message, "python -m train preprocess", 30)
    wait_for_value(page, message, "python -m train fit --name tinyui")
    wait_for(lambda: "Train Epoch" in log_text(page), STEP_TIMEOUT / 1000, "training steps in the log", page)
    wait_for(lambda: plot_lines(page), 60, "the loss plot", page)
    first_plot, first_log = plot_lines(page), log_text(page)
    wait_for(lambda: plot_lines(page) != first_plot and log_text(page) != first_log, 60, "the plot to move", page)
    assert progress_state(page) == "running"
    page.screenshot(path=str(artifacts_dir / "train-tab.png"), full_page=True)

    page.locator("#train-stop").click()
    wait_for(lambda: progress_state(page) == "stopped", 90, "the job to stop", page)
    wait_for_value(page, message, "Stopped after")
    experiment = installation.logs_dir / EXPERIMENT
    checkpoints = sorted(experiment.glob("G_*.pth"))
    assert checkpoints, f"no checkpoint in {experiment}"
    stopped_at = read_checkpoint(checkpoints[-1]).iteration
    assert stopped_at >= 1 and not (experiment / "STOP").exists()
    assert not list(experiment.glob("*.index")), "the index step must not run after a stop"

    page.locator("#train-resume").click()
    wait_for_value(page, message, f"Resuming after epoch {stopped_at}", 30)
    metrics = experiment / "metrics.jsonl"
    wait_for(
        lambda: any(json.loads(line).get("epoch", 0) > stopped_at for line in metrics.read_text().splitlines()),
        STEP_TIMEOUT / 1000,
        "training past the stopped epoch",
        page,
    )
    page.locator("#train-stop").click()
    wait_for(lambda: progress_state(page) == "stopped", 90, "the resumed job to stop", page)
    latest = max(experiment.glob("G_*.pth"), key=lambda p: read_checkpoint(p).iteration)
    assert read_checkpoint(latest).iteration > stopped_at

    page.get_by_role("tab", name="ckpt").click()
    path_box = page.locator("#ckpt-extract-path input")
    path_box.fill(str(latest))
    path_box.press("Enter")
    expect(page.locator("#ckpt-extract-sr").get_by_label("32k")).to_be_checked(timeout=30_000)  # from config.json
    expect(page.locator("#ckpt-extract-version").get_by_label("v2")).to_be_checked()
    textbox(page, "ckpt-extract-name").fill("tinyui_voice")
    page.locator("#ckpt-extract").click()
    wait_for_value(page, "#ckpt-extract-out textarea", "Saved", 60)
    voice = load_voice(installation.weights_dir / "tinyui_voice.pth")
    assert (voice.sample_rate, voice.version, voice.use_f0) == (32000, "v2", True)
    page.screenshot(path=str(artifacts_dir / "ckpt-tab.png"), full_page=True)

    page.get_by_role("tab", name="Export").click()
    page.locator("#export-refresh").click()
    voice_box = page.locator("#export-onnx-voice input")
    voice_box.fill("tinyui_voice.pth")
    voice_box.press("Enter")
    page.locator("#export-onnx").click()
    wait_for_value(page, "#export-onnx-out textarea", "ONNX model:", 120)
    assert (installation.weights_dir / "tinyui_voice.onnx").is_file()
    page.screenshot(path=str(artifacts_dir / "export-tab.png"), full_page=True)
