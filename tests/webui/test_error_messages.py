"""Web errors name the field and stay out of the traceback log (issue 11, finding 8, parts 3-5).

In-process: Gradio's own range checks name the control once
:func:`webui.errors.name_fields_in_errors` ran, and :func:`shown_as_gr_error`
logs expected errors as one line naming the handler, bugs with a traceback.
Through a running server: NaN and out-of-range numbers sent to ``/convert``
come back as messages naming the field, and the server log has no traceback.
"""

from __future__ import annotations

import logging
import math

import gradio as gr
import pytest

from infer.download import DownloadError
from infer.safe_load import ModelFileError
from tests.helpers import Installation
from tests.webui.conftest import HttpSession, convert_data
from webui.errors import field_name, name_fields_in_errors, shown_as_gr_error, user_error

pytestmark = pytest.mark.timeout(180)


# --- Gradio's input checks name the field ---------------------------------------------------------------------


def labelled(app: gr.Blocks, label: str) -> gr.components.Component:
    """The one component of ``app`` whose (English) label is ``label``."""
    from i18n import Translator

    english = Translator.load()
    found = [b for b in app.blocks.values() if field_name(getattr(b, "label", None), english) == label]
    assert len(found) == 1, f"{len(found)} components labelled {label!r}"
    return found[0]


def test_a_slider_above_its_maximum_names_the_slider(settings):
    from webui.app import build_ui

    app = build_ui(settings)
    name_fields_in_errors(app)  # the app already did; a second call must not wrap twice
    with pytest.raises(gr.Error) as caught:
        labelled(app, "Index rate").preprocess(2)
    assert caught.value.message.startswith("Index rate: Value 2 is greater than maximum value 1")
    assert caught.value.print_exception is False


def test_an_unlabelled_component_keeps_gradios_message_without_a_traceback():
    with gr.Blocks() as app:
        slider = gr.Slider(0, 1, 0.5)
    name_fields_in_errors(app)
    with pytest.raises(gr.Error) as caught:
        slider.preprocess(3)
    assert caught.value.message.startswith("Value 3 is greater than maximum value 1")
    assert caught.value.print_exception is False


# --- expected errors: one log line naming the handler --------------------------------------------------------


def load_the_voice(error: BaseException) -> None:
    with shown_as_gr_error():
        raise error


def webui_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "webui"]


@pytest.mark.parametrize(
    "error",
    [ModelFileError("'weights/x.pth' is damaged"), DownloadError("no network: try again later")],
    ids=["model-file", "download"],
)
def test_a_user_error_is_one_log_line_naming_the_handler(caplog, error):
    caplog.set_level(logging.INFO, logger="webui")
    with pytest.raises(gr.Error) as caught:
        load_the_voice(error)
    assert caught.value.message == str(error) and caught.value.print_exception is False
    records = webui_records(caplog)
    assert [record.getMessage() for record in records] == [f"user error in load_the_voice: {error}"]
    assert records[0].levelno == logging.INFO and records[0].exc_info is None


def test_a_bug_keeps_its_traceback(caplog):
    caplog.set_level(logging.INFO, logger="webui")
    with pytest.raises(gr.Error, match="ZeroDivisionError: division by zero"):
        load_the_voice(ZeroDivisionError("division by zero"))
    (record,) = webui_records(caplog)
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.getMessage() == "unexpected error in load_the_voice"


def test_user_error_names_its_caller(caplog):
    caplog.set_level(logging.INFO, logger="webui")

    def pick_input() -> gr.Error:
        return user_error("Choose an input file first.")

    assert pick_input().print_exception is False
    assert [r.getMessage() for r in webui_records(caplog)] == ["user error in pick_input: Choose an input file first."]


# --- through a running server ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(start_server):
    return start_server()


@pytest.fixture(scope="module")
def typed_input(installation: Installation) -> str:
    """A WAV inside the studio's folders, given to ``/convert`` as a typed path."""
    import numpy as np
    import soundfile as sf

    path = installation.logs_dir / "messages" / "tone.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(np.arange(16000) * 2 * np.pi / 80)).astype(np.float32), 16000)
    return str(path)


def error_event(server, typed_input: str, **changes: object) -> str:
    """The text after ``event: error`` of a raw ``/convert`` call (NaN goes out as JSON's ``NaN``)."""
    data = convert_data(None, input_path=typed_input, f0_method="pm", **changes)
    status, stream = HttpSession(server.url).call("convert", data)
    assert status == 200 and "event: error" in stream, stream
    return stream.split("event: error", 1)[1]


@pytest.mark.parametrize(
    ("field", "value", "label"),
    [
        ("index_rate", math.nan, "Index rate"),
        ("key", math.inf, "Key"),
        ("protect", math.nan, "Protect"),
        ("seed", math.nan, "Seed"),
    ],
)
def test_a_non_finite_number_names_its_field(server, typed_input, field, value, label):
    """The message starts with the control's label (or the setting's name) and shows the value.

    (gradio_client itself cannot send NaN: httpx refuses it before the request
    with "Out of range float values are not JSON compliant".)
    """
    message = error_event(server, typed_input, **{field: value})
    assert f'"error": "{label}' in message or f'"error": "{field} ' in message, message
    assert str(value) in message.lower(), message
    assert "not JSON compliant" not in message and "Traceback" not in message, message


def test_a_slider_above_its_maximum_names_the_slider_through_the_api(server, typed_input):
    message = error_event(server, typed_input, index_rate=2)
    assert "Index rate: Value 2 is greater than maximum value 1" in message, message


def test_the_server_log_has_one_line_per_user_error_and_no_traceback(server, typed_input):
    error_event(server, typed_input, rms_mix_rate=math.nan)
    log = server.output()
    assert "Traceback" not in log, log[-3000:]
    assert "user error in " in log and "Loudness" in log.split("user error in ")[-1], log[-3000:]
    assert server.process.poll() is None
