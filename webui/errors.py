"""The one place where library errors become ``gr.Error`` (the message the user sees)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr

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
        raise gr.Error(str(exc) or type(exc).__name__) from exc
    except Exception as exc:
        log.exception("unexpected error in a UI handler")
        raise gr.Error(f"{type(exc).__name__}: {exc}") from exc
