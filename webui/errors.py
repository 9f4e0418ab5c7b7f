"""The one place where library errors become ``gr.Error`` (the message the user sees).

Expected user errors (a bad file, a bad setting) are logged as one line;
only unexpected errors (bugs) get a traceback in the server log.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import gradio as gr

from i18n import Translator

log = logging.getLogger("webui")


@contextmanager
def shown_as_gr_error() -> Iterator[None]:
    """Re-raise any exception from the block as ``gr.Error`` with a message the user can act on.

    ``ValueError``/``OSError`` (the library's user errors: bad file, bad
    setting, missing model) keep their message; anything else is logged with
    its traceback and shown with its type, so nothing fails silently.
    """
    try:
        yield
    except gr.Error:
        raise
    except (ValueError, OSError, KeyError) as exc:
        raise user_error(str(exc) or type(exc).__name__) from exc
    except Exception as exc:
        log.exception("unexpected error in a UI handler")  # the one traceback: this is a bug
        raise gr.Error(f"{type(exc).__name__}: {exc}", print_exception=False) from exc


def user_error(message: str) -> gr.Error:
    """The ``gr.Error`` for an expected mistake (bad file, bad setting): shown to the user, one log line."""
    log.info("user error: %s", message)
    return gr.Error(message, print_exception=False)


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


def _named(preprocess: Callable, field: str) -> Callable:
    @functools.wraps(preprocess)
    def checked(payload):
        try:
            return preprocess(payload)
        except (gr.Error, ValueError, TypeError, ArithmeticError) as exc:
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            raise user_error(f"{field}: {message}") from exc

    return checked


def name_fields_in_errors(app: gr.Blocks, translator: Translator | None = None) -> None:
    """Make Gradio's own input checks (range, choices) name the field: "Index rate: Value 2 is greater ...".

    Wraps the ``preprocess`` of every labelled component of ``app`` (call once, after building it).
    """
    translator = translator or Translator.load()
    for block in app.blocks.values():
        preprocess = getattr(block, "preprocess", None)
        field = field_name(getattr(block, "label", None), translator)
        if callable(preprocess) and field and not getattr(block, "_fields_named", False):
            block.preprocess = _named(preprocess, field)
            block._fields_named = True
