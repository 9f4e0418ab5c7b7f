"""The URL policy of voice imports: schemes, address forms, one DNS answer used, redirects re-checked, size cap."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infer import url_policy
from infer.download import DownloadError, download_file
from infer.url_policy import FetchError, UrlRefusedError, checked_addresses, fetch_url

Route = tuple[int, dict[str, str], bytes]


@dataclass
class LocalServer:
    """A test HTTP server: ``routes`` maps a path to (status, headers, body); ``seen`` records (path, Host)."""

    host: str
    port: int
    routes: dict[str, Route]
    seen: list[tuple[str, str]] = field(default_factory=list)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"


@contextmanager
def serve(routes: dict[str, Route], host: str = "127.0.0.1") -> Iterator[LocalServer]:
    """Run a :class:`LocalServer` on ``host`` (a free port) for the ``with`` block."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            server.seen.append((self.path, self.headers.get("Host", "")))
            status, headers, body = server.routes.get(self.path, (404, {}, b""))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Content-Length" not in headers and status == 200:
                self.send_header("Connection", "close")  # a body without a length: read until closed
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer((host, 0), Handler)
    httpd.daemon_threads = True
    server = LocalServer(host, httpd.server_address[1], routes)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


def body(data: bytes) -> Route:
    return 200, {"Content-Length": str(len(data))}, data


REFUSED_HOSTS = [
    "127.0.0.1",
    "127.1",
    "2130706433",  # 127.0.0.1 as one decimal number
    "0x7f000001",
    "0177.0.0.1",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",
    "169.254.169.254",  # cloud metadata
    "[fe80::1]",
    "[fc00::1]",
    "0.0.0.0",
    "[::]",
    "224.0.0.1",
    "[ff02::1]",
    "240.0.0.1",
    "255.255.255.255",
    "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
    "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_local_and_private_addresses_are_refused_in_every_spelling(host):
    with pytest.raises(UrlRefusedError, match="local or private network address.*--allow-private-urls"):
        checked_addresses(f"http://{host}:8080/voice.zip")
    checked_addresses(f"http://{host}:8080/voice.zip", allow_private=True)  # the owner's switch


@pytest.mark.parametrize("host", ["93.184.216.34", "8.8.8.8", "[2606:4700::1111]"])
def test_public_addresses_pass(host):
    _, addresses = checked_addresses(f"https://{host}/voice.zip")
    assert addresses == [host.strip("[]")]


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.org/v.zip", "gopher://x/", "/srv/voices/a.zip", "C:\\a.zip", "http://"]
)
def test_only_http_urls_with_a_host_are_taken(url):
    with pytest.raises(UrlRefusedError, match="http"):
        checked_addresses(url, allow_private=True)


def test_every_resolved_address_must_be_public():
    answers = {"public.test": ["93.184.216.34"], "mixed.test": ["93.184.216.34", "10.0.0.8"], "inner.test": ["::1"]}

    def resolver(host: str, port: int) -> list[str]:
        return answers[host]

    assert checked_addresses("https://public.test/a.zip", resolver=resolver)[1] == ["93.184.216.34"]
    for host in ("mixed.test", "inner.test"):
        with pytest.raises(UrlRefusedError, match=host):
            checked_addresses(f"https://{host}/a.zip", resolver=resolver)
    with pytest.raises(UrlRefusedError):
        checked_addresses("http://localhost:1/")  # the system resolver's answer is checked too


def test_a_refusal_connects_nowhere_and_says_the_same_for_open_and_closed_ports(tmp_path):
    with serve({"/": body(b"secret")}) as server:
        with pytest.raises(UrlRefusedError) as open_port:
            fetch_url(server.url(), tmp_path / "a")
        assert server.seen == []  # refused before connecting
        closed = server.port
    with pytest.raises(UrlRefusedError) as closed_port:
        fetch_url(f"http://127.0.0.1:{closed}/", tmp_path / "a")
    assert str(open_port.value) == str(closed_port.value)


def test_the_checked_address_is_the_one_connected_to(tmp_path):
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]  # "voice.test" exists only in this answer

    with serve({"/v.zip": body(b"zipdata")}) as server:
        url = f"http://voice.test:{server.port}/v.zip"
        assert fetch_url(url, tmp_path / "v.zip", allow_private=True, resolver=resolver).read_bytes() == b"zipdata"
    assert calls == ["voice.test"]  # resolved once, not again by the connection
    assert server.seen == [("/v.zip", f"voice.test:{server.port}")]


@pytest.fixture
def public_127_0_0_2(monkeypatch):
    """Treat 127.0.0.2 (a second loopback address) as a public host, every other address as the policy says."""
    real = url_policy.is_public
    monkeypatch.setattr(url_policy, "is_public", lambda address: str(address) == "127.0.0.2" or real(address))


def test_redirects_are_checked_at_every_hop(tmp_path, public_127_0_0_2):
    with serve({"/inner": body(b"secret")}) as inner:
        routes = {
            "/to-inner": (302, {"Location": inner.url("/inner"), "Content-Length": "0"}, b""),
            "/to-file": (302, {"Location": "/file", "Content-Length": "0"}, b""),
            "/file": body(b"public file"),
            "/loop": (301, {"Location": "/loop", "Content-Length": "0"}, b""),
        }
        with serve(routes, host="127.0.0.2") as public:
            with pytest.raises(UrlRefusedError, match="127.0.0.1"):
                fetch_url(public.url("/to-inner"), tmp_path / "a")
            assert inner.seen == [] and not (tmp_path / "a").exists()
            assert fetch_url(public.url("/to-file"), tmp_path / "b").read_bytes() == b"public file"
            with pytest.raises(FetchError, match="more than 3 redirects"):
                fetch_url(public.url("/loop"), tmp_path / "c", max_redirects=3)


def test_size_cap_from_the_header_and_while_streaming(tmp_path):
    data = b"x" * 5000
    routes = {"/sized": body(data), "/unsized": (200, {}, data)}
    with serve(routes) as server:
        for path in ("/sized", "/unsized"):
            dest = tmp_path / path.strip("/")
            with pytest.raises(FetchError, match="larger than"):
                fetch_url(server.url(path), dest, allow_private=True, max_bytes=1000)
            assert not dest.exists()
            assert fetch_url(server.url(path), dest, allow_private=True, max_bytes=5000).read_bytes() == data


def test_connection_failures_say_only_could_not_download(tmp_path):
    with serve({}) as server:
        with pytest.raises(FetchError, match=r"^Could not download .*: the server answered HTTP 404"):
            fetch_url(server.url("/missing"), tmp_path / "m", allow_private=True)
        port = server.port
    with pytest.raises(FetchError, match=r"^Could not download .*: the connection failed\.$"):
        fetch_url(f"http://127.0.0.1:{port}/", tmp_path / "m", allow_private=True)


def test_the_asset_downloader_refuses_non_http_urls(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy")
    with pytest.raises(DownloadError, match="not an http"):
        download_file(secret.as_uri(), tmp_path / "copy.txt")
    assert not Path(tmp_path / "copy.txt").exists()


def test_https_goes_to_the_checked_address_and_checks_tls(tmp_path):
    with serve({"/": body(b"plain http")}) as server:
        with pytest.raises(FetchError, match="the secure connection failed"):
            fetch_url(
                f"https://voice.test:{server.port}/",
                tmp_path / "a",
                allow_private=True,
                resolver=lambda h, p: ["127.0.0.1"],
            )
    assert not (tmp_path / "a").exists()
