"""UI texts in English, Simplified Chinese, Japanese and Korean, read from ``i18n/locales``.

Layout: ``i18n/locales/<lang>/<area>.json`` holds flat ``{"key": "text"}`` maps
(one file per UI area, so developers of different tabs never edit the same
file) and ``<lang>/<name>.md`` files hold long texts, available under the key
``<name>.md`` (``faq.md``).  All files of a language are merged into one
catalog; a key defined by two files is an error.  Keys are written
``<area>.<name>`` by convention (``convert.voice``, ``train.epochs``).

Texts with ``{placeholders}`` are templates for :meth:`Translator.text`
(``str.format``), filled on the server; the browser shows texts as they are.
Nothing here imports gradio: :mod:`webui.localize` bridges to it.
"""

from __future__ import annotations

import json
import locale
import os
from dataclasses import dataclass, field
from pathlib import Path

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
LANGUAGES = ("en_US", "zh_CN", "ja_JP", "ko_KR")
DEFAULT_LANGUAGE = "en_US"
LANGUAGE_NAMES = {"en_US": "English", "zh_CN": "简体中文", "ja_JP": "日本語", "ko_KR": "한국어"}
# BCP 47 tags the browser reports for each language (the browser falls back from "ja-JP" to "ja").
BROWSER_TAGS = {"en_US": ("en",), "zh_CN": ("zh-CN", "zh"), "ja_JP": ("ja",), "ko_KR": ("ko",)}


class LocaleError(ValueError):
    """A locale file is unreadable or defines a key twice; the message names the file."""


def normalize_language(text: str | None) -> str | None:
    """One of :data:`LANGUAGES` for a tag like ``ja``, ``ja-JP``, ``ja_JP.UTF-8``, ``zh-Hans-CN``; else None.

    Any Chinese tag maps to ``zh_CN`` (the only Chinese locale we have).
    """
    if not text:
        return None
    tag = text.strip().split(".")[0].split("@")[0].replace("_", "-").lower()
    primary = tag.split("-")[0]
    for lang in LANGUAGES:
        if primary == lang.split("_")[0].lower():
            return lang
    return None


def language_from_accept(header: str | None) -> str | None:
    """The best supported language in an HTTP ``Accept-Language`` header (q-values respected), or None."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        lang = normalize_language(tag)
        if lang is not None and quality > 0:
            ranked.append((-quality, position, lang))
    return min(ranked)[2] if ranked else None


def system_language() -> str:
    """The language of this machine's locale (``LC_ALL``/``LC_MESSAGES``/``LANG``), else English."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        lang = normalize_language(os.environ.get(name))
        if lang is not None:
            return lang
    try:
        found = normalize_language(locale.getlocale()[0])
    except ValueError:
        found = None
    return found or DEFAULT_LANGUAGE


def load_catalog(lang: str, root: Path = LOCALES_DIR) -> dict[str, str]:
    """Every text of ``lang``: the ``*.json`` maps and ``*.md`` files of ``root/lang`` merged.

    Raises :class:`LocaleError` for invalid JSON, non-string values or a key
    defined in two files.
    """
    folder = Path(root) / lang
    catalog: dict[str, str] = {}
    origin: dict[str, Path] = {}
    for path in sorted(folder.glob("*.json")) + sorted(folder.glob("*.md")):
        for key, text in _read_locale_file(path).items():
            if key in catalog:
                raise LocaleError(f"'{path}' defines '{key}', which '{origin[key]}' already defines; rename one.")
            catalog[key], origin[key] = text, path
    return catalog


def _read_locale_file(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        return {path.name: text}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LocaleError(f"'{path}' is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise LocaleError(f"'{path}' must be one JSON object mapping keys to strings.")
    return data


@dataclass
class Translator:
    """Looks texts up per language; a key missing in a language falls back to English, then to the key."""

    catalogs: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path = LOCALES_DIR) -> Translator:
        """The catalogs of every language in :data:`LANGUAGES` under ``root``."""
        return cls({lang: load_catalog(lang, root) for lang in LANGUAGES})

    def has(self, key: str) -> bool:
        """True when ``key`` exists in the English catalog."""
        return key in self.catalogs.get(DEFAULT_LANGUAGE, {})

    def text(self, key: str, lang: str = DEFAULT_LANGUAGE, **values: object) -> str:
        """The text for ``key`` in ``lang``, with ``{name}`` placeholders filled from ``values``."""
        template = self.catalogs.get(lang, {}).get(key)
        if template is None:
            template = self.catalogs.get(DEFAULT_LANGUAGE, {}).get(key, key)
        return template.format(**values) if values else template


__all__ = [
    "BROWSER_TAGS",
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "LANGUAGE_NAMES",
    "LOCALES_DIR",
    "LocaleError",
    "Translator",
    "language_from_accept",
    "load_catalog",
    "normalize_language",
    "system_language",
]
