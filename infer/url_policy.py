"""Which URLs a voice import may fetch, and a fetch that keeps to the addresses it checked.

A URL typed into the web UI is fetched *by the server*, so it could point at
the server's own loopback services or the private network behind it.
:func:`fetch_url` therefore

- takes ``http``/``https`` URLs only (no ``file:``, ``ftp:`` or local paths);
- resolves the host once, refuses it when any of its addresses is loopback,
  private, link-local, multicast, reserved or unspecified (IPv4 and IPv6,
  IPv4-mapped and numeric forms like ``http://2130706433/`` included), unless
  ``allow_private`` is set, and then connects to one of the checked addresses,
  so a DNS answer that changes afterwards cannot move the connection;
- checks every redirect hop the same way (at most ``max_redirects``);
- stops at ``max_bytes``, from ``Content-Length`` before reading and while
  streaming, and removes the partial file.

A refusal happens before any connection, and failures to connect to an
allowed host only say "Could not download <url>: <short reason>", so the
messages never tell whether a port is open.  Proxies are not used: the
connection has to go to the checked address.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from urllib.parse import SplitResult, urljoin, urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""``resolver(host, port)``: the IP addresses (text) a host name stands for."""

SCHEMES = {"http": 80, "https": 443}
REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "rvc-studio-import/1.0"
_CHUNK = 1 << 16


class UrlRefusedError(ValueError):
    """A URL the policy does not allow (scheme, host or address); nothing was fetched."""


class FetchError(OSError):
    """An allowed URL could not be downloaded; the message is "Could not download <url>: <reason>"."""

    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = url, reason
        super().__init__(f"Could not download {url}: {reason}.")


class FetchCancelled(FetchError):
    """``cancel()`` returned True; the partial file was removed."""


def check_url(url: str) -> SplitResult:
    """``url`` split, when it is an ``http(s)`` URL with a host; raises :class:`UrlRefusedError` otherwise."""
    text = (url or "").strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in SCHEMES:
        raise UrlRefusedError(
            f"'{text}' is not an http(s) URL; only addresses starting with https:// or http:// can be fetched."
        )
    try:
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number in range)
    except ValueError as exc:
        raise UrlRefusedError(f"'{text}' has an invalid port number.") from exc
    if not parts.hostname:
        raise UrlRefusedError(f"'{text}' names no host; give the full address, e.g. https://example.org/voice.zip.")
    return parts


def literal_address(host: str) -> Address | None:
    """The IP address ``host`` spells, also in the short numeric forms (``2130706433``, ``0x7f.1``); else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:  # inet_aton reads decimal, octal and hex parts the way the C resolver does
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, Teredo, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    packed = int(address)
    if packed >> 32 == 0 or address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return None


def is_public(address: Address) -> bool:
    """True for a globally routable unicast address (what the open internet can reach)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None and not is_public(inner):
            return False
    special = (
        address.is_private,
        address.is_loopback,
        address.is_link_local,
        address.is_multicast,
        address.is_reserved,
        address.is_unspecified,
    )
    return address.is_global and not any(special)


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``getaddrinfo`` gives for ``host`` (TCP)."""
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def checked_addresses(
    url: str, *, allow_private: bool = False, resolver: Resolver | None = None
) -> tuple[SplitResult, list[str]]:
    """``url`` split and the addresses to connect to, every one of them allowed by the policy.

    Raises :class:`UrlRefusedError` (not http(s), or an address that is not
    public while ``allow_private`` is off) and :class:`FetchError` when the
    host name does not resolve.
    """
    parts = check_url(url)
    host, port = parts.hostname or "", parts.port or SCHEMES[parts.scheme.lower()]
    literal = literal_address(host)
    if literal is not None:
        found = [literal]
    else:
        try:
            found = [ipaddress.ip_address(a.split("%")[0]) for a in (resolver or system_resolver)(host, port)]
        except (OSError, UnicodeError, ValueError) as exc:
            raise FetchError(url, "the host name could not be resolved") from exc
        if not found:
            raise FetchError(url, "the host name could not be resolved")
    if not allow_private and not all(is_public(a) for a in found):
        raise UrlRefusedError(
            f"Refused {url}: '{host}' is a local or private network address, which this server does not fetch "
            "from. Use a public address, or upload the file instead (the server's owner can allow local "
            "addresses with --allow-private-urls)."
        )
    return parts, list(dict.fromkeys(str(a) for a in found))


def _open(parts: SplitResult, addresses: list[str], timeout: float) -> http.client.HTTPConnection:
    """A connection to ``parts``'s host that goes to one of ``addresses`` (TLS still checks the host name)."""
    port = parts.port or SCHEMES[parts.scheme.lower()]
    if parts.scheme.lower() == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
    last: OSError | None = None
    for address in addresses:
        # http.client opens its socket through this attribute; pointing it at the checked
        # address keeps the Host header and TLS name check on the host name.
        conn._create_connection = lambda _hostport, t, source, a=address: socket.create_connection((a, port), t, source)
        try:
            conn.connect()
            return conn
        except OSError as exc:
            conn.close()
            last = exc
    raise last or OSError("no address")


def _size(count: int) -> str:
    return f"{count / 2**20:.0f} MiB" if count >= 2**20 else f"{count} bytes"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return "the secure connection failed"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return "the connection failed"


def fetch_url(
    url: str,
    dest: Path,
    *,
    allow_private: bool = False,
    max_bytes: int | None = None,
    resolver: Resolver | None = None,
    timeout: float = 30.0,
    max_redirects: int = 5,
    progress: Callable[[int, int | None], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` under the policy above and return ``dest``.

    Raises :class:`UrlRefusedError` (a ``ValueError``) for a URL or address the
    policy refuses, :class:`FetchError` (an ``OSError``) for anything else;
    ``dest`` is removed on every failure.
    """
    dest = Path(dest)
    current = url
    for _hop in range(max_redirects + 1):
        parts, addresses = checked_addresses(current, allow_private=allow_private, resolver=resolver)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        conn = None
        try:
            conn = _open(parts, addresses, timeout)
            conn.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            if conn is not None:
                conn.close()
            raise FetchError(current, _reason(exc)) from exc
        try:
            if response.status in REDIRECTS and response.getheader("Location"):
                current = urljoin(current, response.getheader("Location", ""))
                continue
            if response.status != 200:
                raise FetchError(current, f"the server answered HTTP {response.status} {response.reason}")
            _save(response, current, dest, max_bytes, progress, cancel)
            return dest
        finally:
            response.close()
            conn.close()
    raise FetchError(url, f"more than {max_redirects} redirects")


def _save(
    response: http.client.HTTPResponse,
    url: str,
    dest: Path,
    max_bytes: int | None,
    progress: Callable[[int, int | None], None] | None,
    cancel: Callable[[], bool] | None,
) -> None:
    """Stream the body into ``dest``, stopping (and removing ``dest``) past ``max_bytes`` or on ``cancel()``."""
    length = response.getheader("Content-Length")
    total = int(length) if length and length.isdigit() else None
    limit = f"the file is larger than the {_size(max_bytes or 0)} this server accepts"
    if max_bytes is not None and total is not None and total > max_bytes:
        raise FetchError(url, limit)
    done = 0
    try:
        with open(dest, "wb") as out:
            while chunk := response.read(_CHUNK):
                if cancel is not None and cancel():
                    raise FetchCancelled(url, "cancelled")
                done += len(chunk)
                if max_bytes is not None and done > max_bytes:
                    raise FetchError(url, limit)
                out.write(chunk)
                if progress is not None:
                    progress(done, total)
        if total is not None and done < total:
            raise FetchError(url, f"the connection was cut after {done} of {total} bytes")
    except (OSError, http.client.HTTPException) as exc:
        dest.unlink(missing_ok=True)
        if isinstance(exc, FetchError):
            raise
        raise FetchError(url, _reason(exc)) from exc
