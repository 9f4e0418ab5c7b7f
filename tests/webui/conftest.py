"""Fixtures for the web UI tests: a server factory, a headless browser and an artifacts folder.

``start_server`` (module scope) is a factory that runs the real launcher in a
subprocess and stops every server it started when the module ends::

    def test_something(start_server, installation):
        server = start_server("--lang", "ja_JP", env={"RVC_DEVICE": "cpu"})
        server.url           # "http://127.0.0.1:<port>/"
        server.output()      # everything the server printed so far

It runs ``python infer-web.py --noautoopen --port <free port> <flags>`` from
the repository root with ``RVC_ASSETS_DIR``/``RVC_WEIGHTS_DIR``/``RVC_LOGS_DIR``
pointing at ``installation=`` (default: the module's ``installation`` fixture
from :mod:`tests.helpers`, tiny models in a temporary folder) plus ``env=``,
and waits until it answers HTTP (``ready=False`` skips the wait).
``webui_server`` is one such default server shared by a module.

``browser`` is Playwright's chromium (Debian's ``/usr/bin/chromium``,
headless); tests that use it are skipped when Playwright or chromium is
missing.  ``new_page(server, locale="en-US")`` opens the app in a fresh
browser context (its own session and ``navigator.language``) and waits for
the tabs.  ``artifacts_dir`` is ``$RVC_TEST_ARTIFACTS`` or
``<repo>/test-artifacts`` (gitignored), plus ``webui/``: screenshots go there.

For tab handlers tested without a server: ``settings`` (a ``config.Settings``
over an empty temporary installation, CPU) and ``ctx`` (a ``UIContext`` with
those settings and the English texts, no model cache).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from config import Settings
from i18n import Translator
from tests.helpers import REPO_ROOT, Installation, installation, speech  # noqa: F401  (fixtures for this folder)
from webui.context import UIContext

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_TIMEOUT = 180.0


def listening_hosts(port: int) -> set[str]:
    """Addresses with a socket listening on TCP ``port`` on this machine ("127.0.0.1", "0.0.0.0", "::" ...).

    Read from ``/proc/net/tcp`` and ``/proc/net/tcp6`` (Linux); skips the test elsewhere.
    """
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        pytest.skip("needs Linux's /proc/net/tcp")
    hosts = set()
    for table in tables:
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            hosts.add(socket.inet_ntop(socket.AF_INET if len(words) == 4 else socket.AF_INET6, words))
    return hosts


def free_port() -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class WebServer:
    """A running ``infer-web.py`` subprocess."""

    process: subprocess.Popen
    port: int
    log_path: Path
    flags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def output(self) -> str:
        """What the server printed (stdout and stderr) so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = SERVER_START_TIMEOUT) -> None:
        """Wait until the server answers HTTP; fail with its output when it exits or takes too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"infer-web.py exited with {self.process.returncode}:\n{self.output()[-4000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers (e.g. 401 with --auth)
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"infer-web.py did not answer within {timeout:.0f} s:\n{self.output()[-4000:]}")

    def stop(self) -> None:
        """End the server's process group (SIGTERM, then SIGKILL after 10 s)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


@pytest.fixture(scope="module")
def start_server(
    installation: Installation,  # noqa: F811  (the fixture imported above)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., WebServer]]:
    """Factory: ``start_server(*flags, env=None, installation=None, ready=True) -> WebServer``."""
    servers: list[WebServer] = []
    logs = tmp_path_factory.mktemp("webui-logs")
    default_installation = installation

    def start(
        *flags: str, env: dict[str, str] | None = None, installation: Installation | None = None, ready: bool = True
    ) -> WebServer:
        setup = installation or default_installation
        full_env = setup.env()
        full_env.update(GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", NO_PROXY="127.0.0.1,localhost")
        full_env.update(env or {})
        port = free_port()
        log_path = logs / f"server-{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "infer-web.py", "--noautoopen", "--port", str(port), *flags],
                cwd=REPO_ROOT,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = WebServer(process, port, log_path, tuple(flags))
        servers.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def webui_server(start_server: Callable[..., WebServer]) -> WebServer:
    """One default server (browser language, tiny installation) shared by a test module."""
    return start_server()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium driven by Playwright (skips when either is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def new_page(browser):
    """``new_page(server, locale="en-US", **context_options)``: the app in a fresh context, tabs loaded."""
    contexts = []

    def open_page(server: WebServer, locale: str = "en-US", **options):
        context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900}, **options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(server.url)
        page.locator("#main-tabs").wait_for()
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests save screenshots: ``$RVC_TEST_ARTIFACTS`` or ``<repo>/test-artifacts``, then ``webui/``."""
    root = Path(os.environ.get("RVC_TEST_ARTIFACTS") or REPO_ROOT / "test-artifacts")
    folder = root / "webui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env(
        root=tmp_path,
        assets_dir=tmp_path / "assets",
        weights_dir=tmp_path / "weights",
        logs_dir=tmp_path / "logs",
        device="cpu",
    )


@pytest.fixture
def ctx(settings) -> UIContext:
    """A context with the English texts (a plain ``t``, as a tab gets without the app's request-aware one)."""
    english = Translator.load()
    return UIContext(settings, lambda key: english.text(key, "en_US"), cache=None)


@dataclass
class HttpSession:
    """A raw-HTTP API client of one server that keeps the ``rvc_session`` cookie it is given (or none).

    ``keep_cookies=False`` makes a client that never sends cookies.  Methods
    return ``(status, headers, body bytes)``; nothing raises on HTTP errors.
    """

    url: str
    keep_cookies: bool = True
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        request = urllib.request.Request(self.url + path.lstrip("/"), data=data, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                status, got, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, got, body = error.code, error.headers, error.read()
        if self.keep_cookies:
            for line in got.get_all("Set-Cookie") or []:
                name, _, rest = line.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        return status, {k.lower(): v for k, v in got.items()}, body

    def upload(self, name: str, content: bytes) -> tuple[int, bytes]:
        """POST one file to ``/gradio_api/upload`` as a browser does (multipart)."""
        boundary = "rvc-test-boundary-7d1f"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, _, answer = self.request(
            "gradio_api/upload", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        return status, answer

    def call(self, api_name: str, data: list) -> tuple[int, str]:
        """Run ``/gradio_api/call/<api_name>``: (status of the POST, the event stream's text or the POST's answer)."""
        payload = json.dumps({"data": data}).encode()
        status, _, body = self.request(f"gradio_api/call/{api_name}", payload, {"Content-Type": "application/json"})
        if status != 200:
            return status, body.decode("utf-8", "replace")
        event_id = json.loads(body)["event_id"]
        _, _, stream = self.request(f"gradio_api/call/{api_name}/{event_id}")
        return status, stream.decode("utf-8", "replace")


def file_data(path: str) -> dict:
    """The FileData object an API call uses to name a file on the server."""
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def convert_args(**changes: object) -> dict:
    """gradio_client keyword arguments of ``/convert`` with the UI defaults (``changes`` replace some)."""
    args = dict(
        voice="alice.pth",
        input_audio=None,
        input_path="",
        speaker_id=0,
        key=0,
        auto_key=False,
        f0_method="rmvpe",
        index="",
        index_rate=0.75,
        filter_radius=3,
        resample_sr=0,
        rms_mix_rate=0.25,
        protect=0.33,
        f0_curve=None,
        seed=1,
        api_name="/convert",
    )
    args.update(changes)
    return args


def convert_data(input_audio: object = None, **changes: object) -> list:
    """The positional ``data`` of a raw ``/gradio_api/call/convert`` (same defaults as :func:`convert_args`)."""
    args = convert_args(input_audio=input_audio, **changes)
    del args["api_name"]
    return list(args.values())
