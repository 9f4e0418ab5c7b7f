"""Issue 11, finding 1: no client makes the server read, convert or serve a file outside what it may use.

A secret file (a marker text, and a real WAV) lies in a temporary folder
outside the studio's folders; each test tries one way to get at it through a
running server: a typed path, a FileData path in a raw API call, the file
route, or an error message that would print where the server keeps uploads.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import Installation
from tests.webui.conftest import HttpSession, WebServer, convert_args, convert_data, file_data

MARKER = "RVC-TEST-SECRET-4f1c9a"


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory, speech: Path, installation: Installation) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("outside-the-studio")
    text = folder / "secret.txt"
    text.write_text(MARKER)
    audio = folder / "secret.wav"
    shutil.copyfile(speech, audio)
    index = folder / "secret.index"
    shutil.copyfile(installation.indexes["alice"], index)
    return {"text": text, "audio": audio, "index": index}


@pytest.fixture(scope="module")
def server(start_server) -> WebServer:
    return start_server()


def test_a_typed_audio_path_outside_the_studio_is_refused(server: WebServer, secrets: dict[str, Path]) -> None:
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    for typed in (str(secrets["audio"]), str(secrets["audio"].with_name("missing.wav"))):
        with pytest.raises(Exception, match="outside the folders this server reads") as refused:
            client.predict(**convert_args(input_path=typed))
        assert "--allow-path" in str(refused.value) and "does not exist" not in str(refused.value)


def test_a_typed_index_path_outside_the_studio_is_refused(
    server: WebServer, secrets: dict[str, Path], speech: Path
) -> None:
    from gradio_client import Client, handle_file

    client = Client(server.url, verbose=False)
    with pytest.raises(Exception, match="Index file: .* outside the folders this server reads"):
        client.predict(**convert_args(input_audio=handle_file(str(speech)), index=str(secrets["index"])))


def test_a_raw_api_call_cannot_name_a_server_file(server: WebServer, secrets: dict[str, Path]) -> None:
    for target in (str(secrets["text"]), str(secrets["audio"]), "/etc/passwd", "/etc/no-such-file"):
        status, answer = HttpSession(server.url).call("convert", convert_data(file_data(target)))
        assert status == 403, f"{target}: {status} {answer[:300]}"
        assert "not uploaded in this browser session" in answer
        assert target not in answer and MARKER not in answer


def test_a_url_in_place_of_a_path_is_not_fetched_by_the_server(server: WebServer) -> None:
    # Gradio would download an http(s) "path" on the server (a server-side request)
    for target in (server.url + "config", "http://127.0.0.1:9/secret.wav", "https://example.com/a.wav"):
        status, answer = HttpSession(server.url).call("convert", convert_data(file_data(target)))
        assert status == 403, f"{target}: {status} {answer[:300]}"
        assert "not uploaded in this browser session" in answer


def test_a_queue_join_cannot_name_a_server_file(server: WebServer, secrets: dict[str, Path]) -> None:
    import json

    session = HttpSession(server.url)
    body = {"data": convert_data(file_data(str(secrets["audio"]))), "fn_index": 0, "session_hash": "abcdef123456"}
    status, _, answer = session.request(
        "gradio_api/queue/join", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    assert status == 403 and str(secrets["audio"]) not in answer.decode()


def test_errors_name_an_upload_by_its_name_not_its_cache_path(server: WebServer, secrets: dict[str, Path]) -> None:
    from gradio_client import Client, handle_file

    client = Client(server.url, verbose=False)
    with pytest.raises(Exception, match="secret.txt") as refused:
        client.predict(**convert_args(input_audio=handle_file(str(secrets["text"]))))
    message = str(refused.value)
    assert "/" not in message.split("secret.txt")[0][-80:], f"a server path is shown: {message}"
    assert "rvc-studio-gradio" not in message and "/tmp" not in message


@pytest.mark.parametrize("route", ["gradio_api/file=", "gradio_api/file/"])
def test_the_file_route_serves_no_server_file(server: WebServer, secrets: dict[str, Path], route: str) -> None:
    session = HttpSession(server.url)
    for target in (str(secrets["text"]), "/etc/passwd", str(Path(__file__).resolve()), "/tmp"):
        status, _, body = session.request(route + target)
        assert status == 404, f"{route}{target}: {status}"
        assert MARKER.encode() not in body and target.encode() not in body


# ---- the adapters on their own (no server) ------------------------------------------------------


def test_batch_folders_outside_the_studio_are_refused(settings, secrets: dict[str, Path]) -> None:
    from webui.conversion import batch_inputs, output_folder
    from webui.paths import OutsideStudioError, PathPolicy

    policy = PathPolicy(settings)
    with pytest.raises(OutsideStudioError, match="Input folder: .*--allow-path"):
        batch_inputs(str(secrets["audio"].parent), None, policy)
    with pytest.raises(OutsideStudioError, match="Output folder: "):
        output_folder(str(secrets["audio"].parent / "out"), settings)
    inputs = settings.root / "input"
    inputs.mkdir(parents=True)
    (inputs / "innocent.wav").symlink_to(secrets["audio"])
    with pytest.raises(OutsideStudioError):
        batch_inputs(str(inputs), None, policy)


def test_upload_paths_in_errors_become_file_names(tmp_path: Path) -> None:
    from webui.conversion import uploads_named_by_name

    upload = tmp_path / "cache" / "0123abcd" / "take 1.wav"
    with pytest.raises(ValueError) as refused:
        with uploads_named_by_name(str(upload), None):
            raise OSError(f"Cannot decode '{upload}': not audio")
    assert str(refused.value) == "Cannot decode 'take 1.wav': not audio"
    with pytest.raises(KeyError):  # other errors pass unchanged
        with uploads_named_by_name(str(upload)):
            raise KeyError("x")
