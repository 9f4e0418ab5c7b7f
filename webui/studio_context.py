"""The context the app shell's own tabs receive: :class:`UIContext` plus server-side translation and outputs."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from webui.context import UIContext
from webui.conversion import OutputFolder
from webui.localize import UILanguage


@dataclass
class StudioContext(UIContext):
    """A :class:`UIContext` (what every tab gets) with two extras for the Convert, FAQ and assets parts.

    ``ui`` translates texts built for one request (``text``); ``outputs`` is
    the temporary folder single conversions are written to and served from.
    """

    ui: UILanguage | None = None
    outputs: OutputFolder | None = None

    def text(self, key: str, request: gr.Request | None = None, **values: object) -> str:
        """The text of ``key`` in the language of ``request`` (templates filled from ``values``)."""
        if self.ui is None:
            self.ui = UILanguage.create(None)
        return self.ui.text(key, request, **values)
