"""Choosing the UI language: the browser's (through Gradio's I18n) or one forced with ``--lang``.

Without ``--lang`` every label is a Gradio translation marker: the page shows
it in the browser's language (``navigator.language``: English, Chinese,
Japanese or Korean, else English).  Texts built on the server for one request
(status lines with numbers) use the request's ``Accept-Language`` instead.
With ``--lang`` labels and messages are plain text in that language.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
from gradio.i18n import I18nData

from i18n import BROWSER_TAGS, LANGUAGES, Translator, language_from_accept, normalize_language, system_language


@dataclass
class UILanguage:
    """The language policy of one server: ``forced`` (a code of :data:`i18n.LANGUAGES`) or None (per browser)."""

    translator: Translator
    forced: str | None = None

    @classmethod
    def create(cls, lang: str | None, translator: Translator | None = None) -> UILanguage:
        """``lang`` from ``--lang`` (``ja``, ``ja_JP``, ``zh-CN``; None or ``auto``: per browser).

        Raises ``ValueError`` naming the supported languages for anything else.
        """
        translator = translator or Translator.load()
        if lang is None or lang.strip().lower() in ("", "auto"):
            return cls(translator, None)
        forced = normalize_language(lang)
        if forced is None:
            raise ValueError(f"unsupported language '{lang}'; use one of {', '.join(LANGUAGES)} or auto")
        return cls(translator, forced)

    def label(self, key: str) -> str:
        """A static UI text (label, title, markdown, choice name).

        Per-browser mode returns a marker string that the page replaces with
        the translation; it survives concatenation with plain text (one marker
        per string) but must not be parsed or compared.
        """
        if self.forced is not None:
            return self.translator.text(key, self.forced)
        return str(I18nData(key))

    def language_of(self, request: gr.Request | None) -> str:
        """The language for a text built for ``request``: forced, else its Accept-Language, else the system's."""
        if self.forced is not None:
            return self.forced
        headers = getattr(request, "headers", None)
        found = language_from_accept(headers.get("accept-language") if headers is not None else None)
        return found or system_language()

    def text(self, key: str, request: gr.Request | None = None, **values: object) -> str:
        """A text (template filled with ``values``) in the language of ``request``."""
        return self.translator.text(key, self.language_of(request), **values)

    def gradio_i18n(self) -> gr.I18n | None:
        """The translations for ``launch(i18n=...)``; None when the language is forced."""
        if self.forced is not None:
            return None
        tables: dict[str, dict[str, str]] = {}
        for lang in LANGUAGES:
            catalog = self.translator.catalogs.get(lang, {})
            for tag in BROWSER_TAGS[lang]:
                tables[tag] = catalog
        return gr.I18n(**tables)
