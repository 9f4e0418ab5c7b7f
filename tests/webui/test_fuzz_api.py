"""Fuzz-style: malformed inputs through a running server's API (gradio_client and raw HTTP).

Bad uploads, out-of-range and non-finite numbers, hostile typed paths and
voice names, save names that try to leave their folder, and URLs that point
into the server's network.  Every call must fail with a message that names
the file or the field, must not show server paths of Gradio's cache, and
must not write anything outside the studio's folders; at the end the server
is still up and its log shows no traceback for these user errors.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e import fuzz_cases
from tests.helpers import Installation
from tests.webui.conftest import convert_args, convert_data

pytestmark = pytest.mark.timeout(120)  # a hang is a failure too (finding 3: decoding a lying header)

FAST = {"f0_method": "pm"}  # the cheapest pitch method: these calls are about refusals
UPLOADABLE = [name for name in fuzz_cases.AUDIO_CASES if name not in ("directory", "dangling_link", "missing")]


@pytest.fixture(scope="module")
def server(start_server):
    return start_server()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def good_audio(tmp_path_factory) -> Path:
    return fuzz_cases._write("good.wav", fuzz_cases._wav(16000, fuzz_cases._tone(1.5)))(tmp_path_factory.mktemp("ok"))


@pytest.fixture(scope="module")
def typed_audio(installation: Installation) -> Path:
    """A good input inside the studio's folders, for calls that give the input as a typed path."""
    folder = installation.logs_dir / "fuzz-inputs"
    folder.mkdir(exist_ok=True)
    return fuzz_cases._write("typed.wav", fuzz_cases._wav(16000, fuzz_cases._tone(1.5)))(folder)


def refusal(call) -> str:
    """The message of the error ``call()`` must raise."""
    with pytest.raises(Exception) as caught:
        call()
    return str(caught.value)


def assert_names(message: str, *names: str) -> None:
    assert len(message) >= 20, f"too terse to act on: {message!r}"
    assert any(name.lower() in message.lower() for name in names), f"names none of {names}: {message}"
    assert "/gradio/" not in message and "gradio_api/file" not in message, f"shows a server cache path: {message}"
    assert "Traceback" not in message and "not JSON compliant" not in message, message


def convert(client, audio, **changes):
    from gradio_client import handle_file

    upload = handle_file(str(audio)) if audio is not None else None
    return lambda: client.predict(**convert_args(input_audio=upload, **{**FAST, **changes}))


@pytest.mark.parametrize("case", UPLOADABLE)
def test_malformed_uploads(client, tmp_path, case):
    source = fuzz_cases.AUDIO_CASES[case](tmp_path)
    assert_names(refusal(convert(client, source)), source.stem[:4], "input audio")


NUMBERS = [
    ("key", math.nan, ("key",)),
    ("key", math.inf, ("key",)),
    ("key", 100, ("key",)),
    ("index_rate", math.nan, ("index rate", "index_rate")),
    ("index_rate", 2, ("index rate", "index_rate")),
    ("index_rate", -1, ("index rate", "index_rate")),
    ("filter_radius", 99, ("filter radius", "filter_radius")),
    ("filter_radius", -1, ("filter radius", "filter_radius")),
    ("rms_mix_rate", math.nan, ("loudness", "rms_mix_rate")),
    ("rms_mix_rate", 3, ("loudness", "rms_mix_rate")),
    ("protect", 0.9, ("protect",)),
    ("protect", math.nan, ("protect",)),
    ("resample_sr", 1, ("sample rate", "resample")),
    ("speaker_id", -1, ("speaker",)),
    ("speaker_id", 99, ("speaker",)),
    ("speaker_id", math.inf, ("speaker",)),
    ("f0_method", "bogus", ("pitch method", "f0")),
    ("seed", math.nan, ("seed",)),
]


def raw_convert(server, audio: object = None, **changes) -> str:
    """Call ``/convert`` over plain HTTP (NaN and inf go out as JSON's NaN/Infinity, as a script may send them).

    Returns the whole event stream (the error event carries the message).
    """
    data = convert_data(audio, **{**FAST, **changes})
    request = urllib.request.Request(
        server.url + "gradio_api/call/convert",
        data=json.dumps({"data": data}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            event = json.load(response)["event_id"]
        with urllib.request.urlopen(server.url + f"gradio_api/call/convert/{event}", timeout=120) as response:
            return response.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.read().decode()


@pytest.mark.parametrize(("field", "value", "names"), NUMBERS, ids=[f"{f}={v}" for f, v, _ in NUMBERS])
def test_malformed_numbers(server, typed_audio, field, value, names):
    stream = raw_convert(server, input_path=str(typed_audio), **{field: value})
    assert "event: error" in stream, stream
    assert_names(stream.split("event: error", 1)[1], *names)


TYPED_PATHS = [
    "/etc/shadow",
    "/etc/passwd",
    "/etc/no-such-file-here",
    "../../../../etc/hostname",
    "~/.bashrc",
    "/proc/self/environ",
    "input/../../config.py",
    "/dev/zero",
    "C:\\Windows\\win.ini",
    "x" * 5000,
]


@pytest.mark.parametrize("typed", TYPED_PATHS, ids=range(len(TYPED_PATHS)))
def test_typed_input_paths_outside_the_studio(client, typed):
    message = refusal(convert(client, None, input_path=typed))
    assert_names(message, "input")
    assert "does not exist" not in message and "not found" not in message.lower(), message


def test_refusals_do_not_tell_whether_a_path_exists(client):
    exists = refusal(convert(client, None, input_path="/etc/passwd"))
    missing = refusal(convert(client, None, input_path="/etc/passwd-no-such"))
    assert exists.replace("/etc/passwd", "X") == missing.replace("/etc/passwd-no-such", "X")


VOICES = ["../../../etc/passwd", "/etc/passwd", "nobody.pth", "alice.pth/../../x.pth", "..\\..\\evil.pth"]


@pytest.mark.parametrize("voice", VOICES)
def test_voice_names_that_are_not_voices(client, good_audio, voice):
    assert_names(refusal(convert(client, good_audio, voice=voice)), "voice")


SAVE_NAMES = ["../../../evil_merge", "/tmp/evil_merge", "sub/mix", "..", ".hidden", "CON"]


@pytest.mark.parametrize("name", SAVE_NAMES)
def test_merge_save_names_that_are_paths(client, name):
    message = refusal(lambda: client.predict("alice.pth", "bob.pth", 0.5, "", name, True, api_name="/ckpt_merge"))
    assert_names(message, "name")


URLS = [
    "file:///etc/passwd",
    "/etc/passwd",
    "ftp://example.com/voice.zip",
    "http://127.0.0.1:1/voice.zip",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/voice.zip",
    "http://2130706433/voice.zip",
    "gopher://localhost:70/",
]


@pytest.mark.parametrize("url", URLS)
def test_import_urls_into_the_server_network(client, url):
    message = refusal(lambda: client.predict(None, url, "", False, api_name="/import_bundle"))
    assert_names(message, "url", "upload", url[:12])


def test_a_file_data_naming_a_server_file_is_refused(server):
    """Raw HTTP, as an attacker would send it: the upload field names a file on the server."""
    stream = raw_convert(server, {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}})
    assert "root:" not in stream, "the server's file came back"
    assert "/gradio/" not in stream and "event: complete" not in stream, stream


def test_the_server_is_still_up_and_wrote_nothing_outside(server, installation: Installation):
    with urllib.request.urlopen(server.url + "config", timeout=30) as response:
        assert response.status == 200
    assert server.process.poll() is None
    for escaped in (Path("/tmp/evil_merge.pth"), installation.root.parent / "evil_merge.pth"):
        assert not escaped.exists(), escaped
    log = server.output()
    assert "Traceback" not in log, log[-3000:]
