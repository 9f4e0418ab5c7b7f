"""Servers started with flags or a broken installation: ``--listen``, ``--auth``, ``--lang``, missing assets.

(The default server's loopback binding is checked in ``test_server.py``.)

Each server here is a real ``infer-web.py`` subprocess (see ``conftest.py``);
one server covers ``--listen --auth --lang`` together to keep the module fast.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import Installation
from tests.webui.conftest import WebServer, convert_args, listening_hosts

USER, PASSWORD = "singer", "pa:ss word"  # a colon in the password must survive the USER:PASS split


@pytest.fixture(scope="module")
def guarded_server(start_server) -> WebServer:
    return start_server("--listen", "--auth", f"{USER}:{PASSWORD}", "--lang", "ko_KR")


@pytest.fixture(scope="module")
def bare_server(start_server, tmp_path_factory) -> WebServer:
    """A server whose assets folder is empty: no content encoder, no RMVPE, no pretrained models."""
    empty = tmp_path_factory.mktemp("no-assets")
    return start_server(env={"RVC_ASSETS_DIR": str(empty)})


def http_status(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_listen_binds_every_interface(guarded_server: WebServer) -> None:
    hosts = listening_hosts(guarded_server.port)
    assert hosts and hosts <= {"0.0.0.0", "::"}, f"--listen should bind all interfaces, not {hosts}"


def test_auth_refuses_unauthenticated_requests(guarded_server: WebServer) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError

    url = guarded_server.url
    assert http_status(url + "config") == 401
    assert http_status(url + "gradio_api/info") == 401
    call = json.dumps({"data": ["alice.pth"]}).encode()
    assert http_status(url + "gradio_api/call/convert", call, {"Content-Type": "application/json"}) == 401
    with pytest.raises(AuthenticationError):
        Client(url, verbose=False)
    with pytest.raises((AuthenticationError, ValueError), match="Could not login"):  # 400 or 401, by version
        Client(url, auth=(USER, "wrong"), verbose=False)

    client = Client(url, auth=(USER, PASSWORD), verbose=False)
    assert "/convert" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]


@pytest.mark.browser
def test_login_then_forced_language(guarded_server: WebServer, browser, artifacts_dir: Path) -> None:
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(guarded_server.url)
        page.locator("input[type=password]").wait_for()
        page.screenshot(path=str(artifacts_dir / "app-login.png"))
        page.locator("input[type=text]").first.fill(USER)
        page.locator("input[type=password]").fill(PASSWORD)
        page.locator("input[type=password]").press("Enter")
        page.locator("#main-tabs").wait_for()
        # --lang ko_KR wins over the browser's English
        assert page.locator("#tab-convert-button").inner_text().strip() == "변환"
        assert page.locator("#convert-button").inner_text().strip() == "변환"
        page.screenshot(path=str(artifacts_dir / "app-convert-ko.png"), full_page=True)
    finally:
        context.close()


@pytest.mark.browser
def test_missing_assets_are_named_and_offered_for_download(
    bare_server: WebServer, new_page, artifacts_dir: Path
) -> None:
    page = new_page(bare_server)
    banner = page.locator("#assets-banner").first  # gradio 6 puts a group's elem_id on two nested divs
    banner.wait_for(state="visible")
    text = page.locator("#assets-missing").inner_text()
    for name in ("hubert_base.pt", "rmvpe.pt", "f0G40k.pth", "f0D40k.pth"):
        assert name in text, f"{name} is not named in the banner:\n{text}"
    assert page.locator("#assets-download").is_visible()
    assert page.locator("#convert-voice").is_visible()  # the rest of the UI works
    page.screenshot(path=str(artifacts_dir / "app-missing-assets.png"), full_page=True)


def test_converting_without_assets_says_which_file_is_missing(
    bare_server: WebServer, installation: Installation, speech: Path
) -> None:
    from gradio_client import Client, handle_file

    client = Client(bare_server.url, verbose=False)
    with pytest.raises(Exception, match="Content encoder not found"):
        client.predict(**convert_args(input_audio=handle_file(str(speech))))
