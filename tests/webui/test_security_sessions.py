"""Issue 11, finding 6: uploads and outputs are private to their session, uploads are capped, logins back off.

Session A uploads a WAV and converts it through the raw HTTP API (keeping its
``rvc_session`` cookie); session B (another cookie) and a client without
cookies must get 404 for A's files and may not name them as inputs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.webui.conftest import HttpSession, WebServer, file_data
from webui.security import FREE_LOGIN_FAILURES, SESSION_COOKIE

UPLOAD_LIMIT_MB = 1
USER, PASSWORD = "singer", "right"


def convert_data(input_audio: object) -> list:
    return ["alice.pth", input_audio, "", 0, 0, False, "rmvpe", "", 0.75, 3, 0, 0.25, 0.33, None, 1]


def output_of(stream: str) -> dict:
    """The converted audio's FileData from a ``/gradio_api/call`` event stream."""
    assert "event: complete" in stream, stream[-1000:]
    data = stream.split("event: complete", 1)[1].split("data:", 1)[1].strip().splitlines()[0]
    return json.loads(data)[1]


@pytest.fixture(scope="module")
def server(start_server) -> WebServer:
    return start_server("--max-upload-mb", str(UPLOAD_LIMIT_MB))


@pytest.fixture(scope="module")
def session_a(server: WebServer, speech: Path) -> tuple[HttpSession, str, str]:
    """Session A, its uploaded file's server path and its output's server path."""
    session = HttpSession(server.url)
    status, _, _ = session.request("config")
    assert status == 200
    status, answer = session.upload("speech.wav", speech.read_bytes())
    assert status == 200, answer
    uploaded = json.loads(answer)[0]
    status, stream = session.call("convert", convert_data(file_data(uploaded)))
    assert status == 200
    return session, uploaded, output_of(stream)["path"]


def test_the_session_cookie_is_private(server: WebServer) -> None:
    _, headers, _ = HttpSession(server.url).request("config")
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_a_session_fetches_its_own_upload_and_output(session_a) -> None:
    session, uploaded, output = session_a
    assert session.request(f"gradio_api/file={uploaded}")[0] == 200
    status, _, body = session.request(f"gradio_api/file={output}")
    assert status == 200 and body[:4] == b"RIFF"


def test_other_sessions_and_cookieless_clients_get_404(server: WebServer, session_a) -> None:
    _, uploaded, output = session_a
    other = HttpSession(server.url)
    other.request("config")
    for client in (other, HttpSession(server.url, keep_cookies=False)):
        for path in (uploaded, output):
            for route in ("gradio_api/file=", "gradio_api/file/"):
                status, _, body = client.request(route + path)
                assert status == 404 and body[:4] != b"RIFF", f"{route}{path} answered {status}"


def test_another_session_cannot_convert_an_upload_it_did_not_make(server: WebServer, session_a) -> None:
    _, uploaded, output = session_a
    other = HttpSession(server.url)
    for path in (uploaded, output):
        status, answer = other.call("convert", convert_data(file_data(path)))
        assert status == 403 and "not uploaded in this browser session" in answer


def test_gradio_client_keeps_its_session_and_downloads_its_output(server: WebServer, speech: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(server.url, verbose=False)
    assert SESSION_COOKIE in client.cookies  # taken from /config and sent with every later request
    _, audio, _ = client.predict(
        "alice.pth", handle_file(str(speech)), "", 0, 0, False, "rmvpe", "", 0.75, 3, 0, 0.25, 0.33, None, 1,
        api_name="/convert",
    )  # fmt: skip
    assert Path(audio).read_bytes()[:4] == b"RIFF"


def test_uploads_over_the_limit_are_refused_with_the_limit_named(server: WebServer) -> None:
    session = HttpSession(server.url)
    limit = UPLOAD_LIMIT_MB * 1024 * 1024
    status, answer = session.upload("big.wav", b"\0" * (limit + 1))
    assert status == 413, answer
    assert f"upload limit of {UPLOAD_LIMIT_MB} MB" in answer.decode() and "--max-upload-mb" in answer.decode()
    assert session.upload("small.wav", b"\0" * (limit - 1))[0] == 200


@pytest.fixture(scope="module")
def guarded_server(start_server) -> WebServer:
    return start_server("--auth", f"{USER}:{PASSWORD}")


def login(server: WebServer, password: str) -> tuple[int, dict[str, str]]:
    body = f"username={USER}&password={password}".encode()
    status, headers, _ = HttpSession(server.url, keep_cookies=False).request(
        "login", body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    return status, headers


def test_failed_logins_back_off_and_the_right_password_works_after(guarded_server: WebServer) -> None:
    for _ in range(FREE_LOGIN_FAILURES):
        assert login(guarded_server, "wrong")[0] == 400
    status, headers = login(guarded_server, PASSWORD)
    assert status == 429, "the address is not slowed down after repeated failures"
    first_wait = int(headers["retry-after"])
    time.sleep(first_wait + 0.2)
    assert login(guarded_server, "wrong")[0] == 400  # one more failure doubles the delay
    status, headers = login(guarded_server, "wrong")
    assert status == 429 and int(headers["retry-after"]) > first_wait
    time.sleep(int(headers["retry-after"]) + 0.2)
    assert login(guarded_server, PASSWORD)[0] == 200
    assert login(guarded_server, "wrong")[0] == 400  # success forgets the failures


# ---- the server flags (parsed, no server) --------------------------------------------------------


def test_server_flags_reach_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from webui.launch import parse_args, settings_from

    monkeypatch.setenv("RVC_INPUT_DIRS", str(tmp_path))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    argv = ["--allow-path", str(tmp_path / "a"), "--allow-path", str(tmp_path / "b"), "--allow-private-urls"]
    settings = settings_from(parse_args([*argv, "--max-upload-mb", "7", "--max-input-minutes", "2.5"]))
    assert settings.input_dirs == (tmp_path, tmp_path / "a", tmp_path / "b")
    assert settings.allow_private_urls and settings.max_upload_mb == 7 and settings.max_input_minutes == 2.5
    defaults = settings_from(parse_args([]))
    assert not defaults.allow_private_urls and defaults.max_upload_mb == 512 and defaults.input_dirs == (tmp_path,)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--allow-path", "/no/such/folder"], "is not a folder"),
        (["--max-upload-mb", "0"], "--max-upload-mb must be at least 1"),
        (["--max-input-minutes", "-1"], "--max-input-minutes must be more than 0"),
    ],
)
def test_bad_server_flags_are_named(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from webui.launch import parse_args

    with pytest.raises(SystemExit):
        parse_args(argv)
    assert message in capsys.readouterr().err
