"""What every tab of the web UI receives: settings, the translator and the shared model cache."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from config import Settings
from infer.cache import ModelCache


@dataclass
class UIContext:
    """Per-server objects handed to each tab's ``build(ctx)``.

    ``t(key)`` returns the label for ``key`` in the UI language (logic never
    compares its result). ``cache`` is thread-safe and shared by all browser
    sessions; per-user choices (the selected voice) live in ``gr.State`` or in
    the widgets themselves, never here.
    """

    settings: Settings
    t: Callable[[str], str]
    cache: ModelCache
