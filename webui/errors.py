"""The one place where library errors become ``gr.Error`` (the message the user sees).

Expected user errors (a bad file, a bad setting) are logged as one line;
only unexpected errors (bugs) get a traceback in the server log.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import gradio as gr

from i18n import Translator
from infer.download import DownloadError
from infer.pipeline import ConversionCancelled
from webui.job_types import JobConflictError

log = logging.getLogger("webui")

# What users cause (bad files, bad settings, no network, a busy job, a cancel): one log line, no traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    OSError,
    KeyError,
    DownloadError,
    ConversionCancelled,
    JobConflictError,
)
_THIS_FILE = Path(__file__).resolve()


@contextmanager
def shown_as_gr_error(handler: str | None = None) -> Iterator[None]:
    """Re-raise any exception from the block as ``gr.Error`` with a message the user can act on.

    :data:`EXPECTED_ERRORS` (the library's user errors: bad file, bad
    setting, missing model) keep their message and are logged as one line
    ``user error in <handler>: <message>``; anything else is a bug: logged
    with its traceback and shown with its type, so nothing fails silently.
    ``handler`` names the UI function in the log (default: the function the
    ``with`` block is in).
    """
    try:
        yield
    except gr.Error:
        raise
    except EXPECTED_ERRORS as exc:
        raise user_error(str(exc) or type(exc).__name__, handler or _raising_function(exc)) from exc
    except Exception as exc:
        where = handler or _raising_function(exc)
        log.exception("unexpected error in %s", where)  # the one traceback: this is a bug
        raise gr.Error(f"{type(exc).__name__}: {exc}", print_exception=False) from exc


def user_error(message: str, handler: str | None = None) -> gr.Error:
    """The ``gr.Error`` for an expected mistake (bad file, bad setting): shown to the user, one log line.

    Gradio prints no traceback for it (``print_exception=False``).  ``handler``
    names the UI function in the log (default: the caller).
    """
    log.info("user error in %s: %s", handler or sys._getframe(1).f_code.co_name, message)
    return gr.Error(message, print_exception=False)


def _raising_function(exc: BaseException) -> str:
    """The outermost function of ``exc``'s traceback outside this module and contextlib (the UI handler)."""
    frame = exc.__traceback__
    while frame is not None:
        filename = Path(frame.tb_frame.f_code.co_filename)
        if filename.resolve() != _THIS_FILE and filename.name != "contextlib.py":
            return frame.tb_frame.f_code.co_name
        frame = frame.tb_next
    return "a UI handler"


_I18N_PREFIX = "__i18n__"


def field_name(label: object, translator: Translator) -> str | None:
    """A component's label as English text (labels of per-browser apps are translation markers)."""
    if not label:
        return None
    text = str(label)
    if text.startswith(_I18N_PREFIX):
        try:
            key = json.loads(text[len(_I18N_PREFIX) :])["key"]
        except (ValueError, KeyError, TypeError):
            return None
        return translator.text(key)
    return text


def _named(preprocess: Callable, field: str | None) -> Callable:
    """``preprocess`` whose input errors become a :func:`user_error` starting with ``field`` (when known)."""

    @functools.wraps(preprocess)
    def checked(payload):
        try:
            return preprocess(payload)
        except (gr.Error, ValueError, TypeError, ArithmeticError) as exc:
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            raise user_error(f"{field}: {message}" if field else message, "reading the request") from exc

    return checked


def name_fields_in_errors(app: gr.Blocks, translator: Translator | None = None) -> None:
    """Make Gradio's own input checks (range, choices) name the field: "Index rate: Value 2 is greater ...".

    Wraps the ``preprocess`` of every component of ``app`` (call once, after
    building it); an unlabelled component's errors keep Gradio's message but,
    like the others, leave one log line instead of a traceback.
    """
    translator = translator or Translator.load()
    for block in app.blocks.values():
        preprocess = getattr(block, "preprocess", None)
        if not callable(preprocess) or getattr(block, "_fields_named", False):
            continue
        block.preprocess = _named(preprocess, field_name(getattr(block, "label", None), translator))
        block._fields_named = True
