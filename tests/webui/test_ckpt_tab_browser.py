"""The ckpt and Export tabs in a real browser: merge two voices, read the result's info, bundle a voice.

Fast (no training): the voices are tiny random ones written before the server starts.
"""

from __future__ import annotations

import re
import zipfile

import pytest

from infer.checkpoints import read_small_model
from infer.testing.voice import save_tiny_voice
from tests.helpers import HUBERT_EMBED_DIM

pytestmark = pytest.mark.browser


def choose(page, elem_id: str, value: str) -> None:
    """Type ``value`` into the dropdown ``elem_id`` (custom values allowed) and confirm it."""
    box = page.locator(f"#{elem_id} input")
    box.fill(value)
    box.press("Enter")


def value_of(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} textarea").input_value()


def test_merge_show_info_and_bundle(start_server, installation, new_page, artifacts_dir):
    from playwright.sync_api import expect

    save_tiny_voice(installation.weights_dir / "dora.pth", "v2", 40000, True, 5, feature_dim=HUBERT_EMBED_DIM)
    page = new_page(start_server(env={"RVC_DEVICE": "cpu"}))
    page.get_by_role("tab", name="ckpt").click()
    choose(page, "ckpt-merge-a", "alice.pth")
    choose(page, "ckpt-merge-b", "dora.pth")
    page.locator("#ckpt-merge-name").get_by_role("textbox").fill("alidora")
    page.locator("#ckpt-merge-info").get_by_role("textbox").fill("half and half")
    page.locator("#ckpt-merge").click()
    merged = installation.weights_dir / "alidora.pth"
    expect(page.locator("#ckpt-merge-out textarea")).to_have_value(
        re.compile(
            rf"^Saved {re.escape(str(merged))}: 40k v2, with pitch guidance, \d+ speaker\(s\)\. "
            "Info: half and half$"
        ),
        timeout=60_000,
    )
    assert read_small_model(merged).info == "half and half"

    page.locator("#ckpt-merge").click()  # the same again: refused, the file is kept
    expect(
        page.locator(".toast-body")
        .filter(has_text="alidora.pth' already exists")
        .filter(has_text="Replace an existing file")
        .first
    ).to_be_visible(timeout=30_000)

    page.locator("#ckpt-refresh").click()
    choose(page, "ckpt-info-voice", "alidora.pth")
    page.locator("#ckpt-show").click()
    expect(page.locator("#ckpt-info-out textarea")).to_have_value(
        re.compile(r"File: alidora\.pth \(voice\)\nInfo: half and half\nSample rate: 40k"), timeout=60_000
    )
    page.screenshot(path=str(artifacts_dir / "ckpt-tab-merge.png"), full_page=True)

    page.get_by_role("tab", name="Export").click()
    page.locator("#export-refresh").click()
    choose(page, "export-bundle-voice", "alice.pth")
    page.locator("#export-bundle").click()
    bundle = installation.weights_dir / "alice.zip"
    expect(page.locator("#export-bundle-out textarea")).to_have_value(
        re.compile(rf"^Saved {re.escape(str(bundle))} \(.*alice\.index"), timeout=60_000
    )
    with zipfile.ZipFile(bundle) as zf:
        assert sorted(zf.namelist()) == ["alice/alice.index", "alice/alice.pth", "alice/voice.json"]
    expect(page.locator("#export-bundle-file a").first).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "export-tab-bundle.png"), full_page=True)
