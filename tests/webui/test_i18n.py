"""Locale files and language choice: same keys everywhere, texts the browser can show, --lang and Accept-Language."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest

from i18n import (
    LANGUAGES,
    LOCALES_DIR,
    LocaleError,
    Translator,
    language_from_accept,
    load_catalog,
    normalize_language,
)
from tests.helpers import REPO_ROOT

AREA_FILES = sorted(p.name for p in (LOCALES_DIR / "en_US").iterdir())
HTML_TAG = re.compile(r"<[A-Za-z/]")  # Markdown drops these as HTML tags
SHELL_AREAS = ("common.json", "convert.json", "faq.md")
# The texts of the app shell, Convert and FAQ code: every t("...") / text("...") literal must exist.
SHELL_SOURCES = [
    "webui/app.py",
    "webui/tabs/convert.py",
    "webui/tabs/batch.py",
    "webui/tabs/assets.py",
    "webui/tabs/faq.py",
]
KEY_CALL = re.compile(r"""\b(?:t|text)\(\s*f?["']([a-z0-9_.{}]+)["']""")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en_US"])
@pytest.mark.parametrize("area", AREA_FILES)
def test_every_locale_has_the_same_keys_and_placeholders(lang: str, area: str) -> None:
    english, other = LOCALES_DIR / "en_US" / area, LOCALES_DIR / lang / area
    assert other.is_file(), f"{other} is missing"
    if area.endswith(".md"):
        assert other.read_text(encoding="utf-8").strip(), f"{other} is empty"
        return
    en_map = json.loads(english.read_text(encoding="utf-8"))
    other_map = json.loads(other.read_text(encoding="utf-8"))
    assert sorted(other_map) == sorted(en_map), f"{other}: keys differ from {english}"
    for key, text in en_map.items():
        assert placeholders(other_map[key]) == placeholders(text), f"{other} '{key}': placeholders differ"
        assert other_map[key].strip(), f"{other} '{key}' is empty"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalogs_load_and_shell_texts_survive_markdown(lang: str) -> None:
    catalog = load_catalog(lang)
    assert "faq.md" in catalog and "tab.convert" in catalog
    for area in SHELL_AREAS:
        path = LOCALES_DIR / lang / area
        texts = (
            {area: path.read_text(encoding="utf-8")} if area.endswith(".md") else json.loads(path.read_text("utf-8"))
        )
        for key, text in texts.items():
            placeholders(text)  # a valid format string (templates are filled with str.format)
            assert not HTML_TAG.search(text), f"{path} '{key}': '<' + letter is dropped by Markdown as an HTML tag"


def test_the_faq_answers_the_seed_questions_in_every_language() -> None:
    # Each FAQ answers the same questions (RVC FAQ Q1-Q18 plus the top complaints), one bold line each.
    counts = {lang: load_catalog(lang)["faq.md"].count("\n**") for lang in LANGUAGES}
    assert counts["en_US"] >= 20 and len(set(counts.values())) == 1, counts
    english = load_catalog("en_US")["faq.md"]
    for phrase in ("utf8 error", "Expecting value", "out of memory", "size of tensor a (24)", "index rate", "--listen"):
        assert phrase in english


def test_every_key_the_shell_uses_exists() -> None:
    english = load_catalog("en_US")
    used = set()
    for source in SHELL_SOURCES:
        used |= set(KEY_CALL.findall((REPO_ROOT / source).read_text(encoding="utf-8")))
    dynamic = {key for key in used if "{" in key}
    used -= dynamic
    assert len(used) > 40
    missing = sorted(key for key in used if key not in english)
    assert not missing, f"keys used in code but not in en_US: {missing}"
    assert {f"tab.{name}" for name in ("convert", "train", "ckpt", "export", "faq")} <= set(english)
    assert {f"batch.status_{s}" for s in ("converted", "skipped", "failed")} <= set(english)


def test_a_key_defined_twice_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "en_US"
    folder.mkdir()
    (folder / "a.json").write_text('{"x.one": "1"}', encoding="utf-8")
    (folder / "b.json").write_text('{"x.one": "again"}', encoding="utf-8")
    with pytest.raises(LocaleError, match="b.json.*x.one"):
        load_catalog("en_US", tmp_path)
    (folder / "b.json").write_text('["not", "a", "map"]', encoding="utf-8")
    with pytest.raises(LocaleError, match="b.json"):
        load_catalog("en_US", tmp_path)


def test_translator_falls_back_to_english_then_to_the_key() -> None:
    translator = Translator({"en_US": {"a": "Hello {name}", "b": "B"}, "ja_JP": {"a": "こんにちは {name}"}})
    assert translator.text("a", "ja_JP", name="X") == "こんにちは X"
    assert translator.text("b", "ja_JP") == "B"
    assert translator.text("missing.key", "ja_JP") == "missing.key"


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("ja", "ja_JP"),
        ("ja-JP", "ja_JP"),
        ("ja_JP.UTF-8", "ja_JP"),
        ("zh-Hans-CN", "zh_CN"),
        ("zh-TW", "zh_CN"),
        ("ko-KR", "ko_KR"),
        ("EN-gb", "en_US"),
        ("fr-FR", None),
        ("", None),
        ("C", None),
    ],
)
def test_normalize_language(tag: str, expected: str | None) -> None:
    assert normalize_language(tag) == expected


def test_accept_language_respects_order_and_quality() -> None:
    assert language_from_accept("fr-FR,fr;q=0.9,ja;q=0.8,en;q=0.7") == "ja_JP"
    assert language_from_accept("en;q=0.5, ko-KR") == "ko_KR"
    assert language_from_accept("de, fr") is None
    assert language_from_accept("ja;q=0, zh-CN;q=0.1") == "zh_CN"
    assert language_from_accept(None) is None
