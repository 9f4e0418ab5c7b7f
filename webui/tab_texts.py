"""Texts a tab builds on the server for one request (status lines with numbers), in that request's language."""

from __future__ import annotations

from typing import Any


def say(ctx: Any, key: str, request: Any = None, **values: object) -> str:
    """The text of ``key`` for ``request``, its ``{placeholders}`` filled from ``values``.

    Uses the context's request-aware ``text(key, request, **values)`` when it
    has one (the app's :class:`~webui.studio_context.StudioContext`), else the
    plain label function ``t``.
    """
    text = getattr(ctx, "text", None)
    if callable(text):
        return text(key, request, **values)
    template = ctx.t(key)
    return template.format(**values) if values else template
