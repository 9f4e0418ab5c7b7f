"""The running app: loopback binding, the conversion API, and the browser flows (tabs, convert, languages, sessions).

One server per module (``webui_server``), started by the real launcher over a
tiny installation; conversions use a fixed seed so each output can be compared
with the library's own output for the same voice.
"""

from __future__ import annotations

import base64
import io
import shutil
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile

from infer.convert import convert_file, prepare
from infer.params import ConvertParams
from tests.helpers import Installation
from tests.webui.conftest import convert_args, listening_hosts

SEED = 1234
VOICE_RATES = {"alice": 40000, "bob": 32000}
FETCH_AUDIO_JS = """async (el) => {
  const bytes = new Uint8Array(await (await fetch(el.src)).arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}"""
DURATION_JS = """(el) => new Promise((resolve) => {
  const probe = new Audio(el.src);
  probe.onloadedmetadata = () => resolve(probe.duration);
  probe.onerror = () => resolve(-1);
})"""


@pytest.fixture(scope="module")
def library_outputs(installation: Installation, speech: Path, tmp_path_factory) -> dict[str, tuple[np.ndarray, int]]:
    """What the library itself makes of ``speech`` with each voice: UI defaults, paired index, seed ``SEED``."""
    cache, folder, outputs = installation.cache(), tmp_path_factory.mktemp("library"), {}
    for name in VOICE_RATES:
        index = installation.indexes.get(name)
        job = prepare(
            installation.voices[name], cache, ConvertParams(seed=SEED), index=index, logs_dir=installation.logs_dir
        )
        convert_file(job, speech, folder / f"{name}.wav")
        audio, rate = soundfile.read(folder / f"{name}.wav", dtype="float32")
        outputs[name] = (audio, rate)
    return outputs


def assert_same_audio(got: tuple[np.ndarray, int], expected: tuple[np.ndarray, int], what: str) -> None:
    (audio, rate), (reference, reference_rate) = got, expected
    assert rate == reference_rate, f"{what}: {rate} Hz, expected {reference_rate} Hz"
    assert audio.shape == reference.shape, f"{what}: {audio.shape} samples, expected {reference.shape}"
    assert np.abs(audio).max() > 0.01, f"{what} is silent"
    # Same seed and settings; other processes may sum in another order: allow a few int16 steps.
    assert np.abs(audio - reference).max() <= 8 / 32768, f"{what} differs from the library output"


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", "not a WAV file"
    audio, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    return audio, rate


def test_binds_loopback_only_by_default(webui_server) -> None:
    assert listening_hosts(webui_server.port) == {"127.0.0.1"}
    with urllib.request.urlopen(webui_server.url + "config", timeout=30) as response:  # no --auth: open
        assert response.status == 200


def test_gradio_client_converts_through_the_api(
    webui_server, installation: Installation, speech: Path, library_outputs
) -> None:
    from gradio_client import Client, handle_file

    client = Client(webui_server.url, verbose=False)
    info, audio_path, timing = client.predict(
        **convert_args(input_audio=handle_file(str(speech)), index=str(installation.indexes["alice"]), seed=SEED)
    )
    assert info.startswith("Success.\nIndex:\n") and "real time" in timing
    assert_same_audio(decode_wav(Path(audio_path).read_bytes()), library_outputs["alice"], "API output")

    with pytest.raises(Exception, match="Speaker id 9 does not exist"):  # a library error, shown as gr.Error
        client.predict(**convert_args(input_audio=handle_file(str(speech)), speaker_id=9, seed=SEED))


# ---- browser -----------------------------------------------------------------------------------


def choose_voice(page, name: str) -> None:
    page.locator("#convert-voice input").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.locator("#convert-voice-summary").get_by_text(name.removesuffix(".pth")).wait_for()


def prepare_conversion(page, voice: str, speech: Path, seed: int = SEED) -> None:
    choose_voice(page, voice)
    page.locator("#convert-input-audio input[type=file]").set_input_files(str(speech))
    page.locator("#convert-input-audio audio").first.wait_for(state="attached")
    seed_box = page.locator("#convert-seed input")
    if not seed_box.is_visible():
        page.locator("#convert-advanced > button").first.click()  # open the "Advanced" accordion
    seed_box.fill(str(seed))


def converted_audio(page, timeout_ms: int = 180_000) -> tuple[np.ndarray, int]:
    """Wait for the output player; return the WAV its <audio> src serves (checked playable and downloadable)."""
    player = page.locator("#convert-output-audio audio[src]").first
    player.wait_for(state="attached", timeout=timeout_ms)
    assert player.evaluate(DURATION_JS) > 0.5, "the browser cannot play the converted audio"
    from_player = decode_wav(base64.b64decode(player.evaluate(FETCH_AUDIO_JS)))
    link = page.locator("#convert-output-audio a[download]").get_attribute("href")
    response = page.context.request.get(link, timeout=30_000)  # with the page's session cookie: outputs are private
    assert response.ok, f"the download link answered {response.status}"
    from_server = decode_wav(response.body())
    np.testing.assert_array_equal(from_player[0], from_server[0])
    return from_server


@pytest.mark.browser
def test_each_tab_opens_and_is_captured(webui_server, new_page, artifacts_dir: Path) -> None:
    page = new_page(webui_server)
    tabs = page.locator("#main-tabs button[role=tab][id^='tab-']")
    names = [tabs.nth(i).get_attribute("id") for i in range(tabs.count())]
    assert names[0] == "tab-convert-button" and names[-1] == "tab-faq-button"
    for button_id in names:
        page.locator(f"#{button_id}").click()
        panel = page.locator(f"#{button_id.removesuffix('-button')}")
        panel.wait_for(state="visible")
        page.wait_for_timeout(300)
        page.screenshot(path=str(artifacts_dir / f"app-{button_id.removesuffix('-button')}.png"), full_page=True)
    assert "Frequently asked questions" in page.locator("#faq-text").inner_text()


@pytest.mark.browser
def test_upload_convert_and_play(
    webui_server, new_page, speech: Path, installation: Installation, library_outputs, artifacts_dir: Path
) -> None:
    page = new_page(webui_server)
    prepare_conversion(page, "alice.pth", speech)
    assert page.locator("#convert-index input").input_value().endswith("added_IVF4_Flat_nprobe_1_alice_v2.index")
    page.locator("#convert-button").click()
    assert_same_audio(converted_audio(page), library_outputs["alice"], "browser output")
    assert page.locator("#convert-info textarea").input_value().startswith("Success.")
    assert "real time" in page.locator("#convert-timing textarea, #convert-timing input").first.input_value()
    page.screenshot(path=str(artifacts_dir / "app-convert-done.png"), full_page=True)


@pytest.mark.browser
def test_two_sessions_convert_with_their_own_voices_at_once(
    webui_server, new_page, speech: Path, library_outputs
) -> None:
    pages = {name: new_page(webui_server) for name in VOICE_RATES}
    for name, page in pages.items():
        prepare_conversion(page, f"{name}.pth", speech)
    for page in pages.values():
        page.locator("#convert-button").click()  # both queued before either finishes
    for name, page in pages.items():
        assert_same_audio(converted_audio(page), library_outputs[name], f"{name}'s session")
        assert page.locator("#convert-voice input").input_value() == f"{name}.pth"


@pytest.mark.browser
def test_the_browser_language_picks_the_labels(webui_server, new_page, artifacts_dir: Path) -> None:
    page = new_page(webui_server, locale="ja-JP")
    assert page.locator("#tab-convert-button").inner_text().strip() == "変換"
    assert page.locator("#convert-button").inner_text().strip() == "変換"
    choose_voice(page, "carol.pth")
    assert "ピッチなし" in page.locator("#convert-voice-summary").inner_text()  # built on the server for this request
    page.locator("#tab-faq-button").click()
    assert "よくある質問" in page.locator("#faq-text").inner_text()
    page.screenshot(path=str(artifacts_dir / "app-faq-ja.png"), full_page=True)
    chinese = new_page(webui_server, locale="zh-CN")
    assert chinese.locator("#tab-convert-button").inner_text().strip() == "转换"
    english = new_page(webui_server, locale="fr-FR")  # unsupported: English
    assert english.locator("#tab-convert-button").inner_text().strip() == "Convert"


@pytest.mark.browser
def test_the_voice_list_refreshes_itself(webui_server, new_page, installation: Installation) -> None:
    page = new_page(webui_server)
    new_voice = installation.weights_dir / "zed.pth"
    shutil.copyfile(installation.voices["bob"], new_voice)
    try:
        deadline = time.monotonic() + 30
        while True:
            page.locator("#convert-voice input").click()
            page.get_by_role("option").first.wait_for()
            options = page.get_by_role("option").all_inner_texts()
            page.keyboard.press("Escape")
            page.locator("#app-header").click()  # blur: a focused combobox does not reopen on click
            if any("zed.pth" in option for option in options):
                break
            assert time.monotonic() < deadline, f"zed.pth never appeared; options: {options}"
            page.wait_for_timeout(1000)
    finally:
        new_voice.unlink()


@pytest.mark.browser
def test_batch_converts_a_folder(
    webui_server, new_page, speech: Path, installation: Installation, tmp_path: Path, artifacts_dir: Path
) -> None:
    # typed folders must lie in the studio's folders: the installation's logs folder is one
    inputs, outputs = installation.logs_dir / tmp_path.name / "in put", installation.logs_dir / tmp_path.name / "out"
    inputs.mkdir(parents=True)
    shutil.copyfile(speech, inputs / "take 1.wav")
    (inputs / "notes.txt").write_text("not audio")
    page = new_page(webui_server)
    choose_voice(page, "bob.pth")
    page.locator("#convert-batch-tab-button").click()
    page.locator("#batch-input-folder textarea, #batch-input-folder input").first.fill(
        f'"{inputs}"'
    )  # quotes as pasted
    page.locator("#batch-output-folder textarea, #batch-output-folder input").first.fill(str(outputs))
    page.locator("#batch-format").get_by_label("flac").check()
    page.locator("#batch-button").click()
    log = page.locator("#batch-log textarea")
    page.wait_for_function("(el) => el.value.includes('Done:')", arg=log.element_handle(), timeout=180_000)
    assert "1 converted, 1 skipped, 0 failed" in log.input_value() and "take 1.wav: converted" in log.input_value()
    audio, rate = soundfile.read(outputs / "take 1.flac", dtype="float32")
    assert rate == VOICE_RATES["bob"] and np.abs(audio).max() > 0.01
    assert sorted(p.name for p in outputs.iterdir()) == ["take 1.flac"]
    page.screenshot(path=str(artifacts_dir / "app-convert-batch.png"), full_page=True)
