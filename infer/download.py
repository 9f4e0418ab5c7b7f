"""Resumable, verified downloads using only the standard library (urllib).

:func:`download_file` writes to ``<dest>.part``, resumes that file with an HTTP
Range request after a cut connection or a previous run, checks size and
SHA-256, and only then renames it into place.  :func:`download_assets` does the
same for entries of the :mod:`infer.assets` registry.

Proxies come from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``)
but are never used for ``localhost`` / ``127.0.0.1`` / ``::1``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

from infer.assets import MIRROR_BASE_URL, Asset, asset_path

ProgressCallback = Callable[[int, "int | None"], None]
AssetProgressCallback = Callable[[Asset, int, "int | None"], None]
CancelCheck = Callable[[], bool]

USER_AGENT = "rvc-studio-downloader/1.0"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_RETRYABLE_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})


class DownloadError(RuntimeError):
    """A download failed; the message names the file and says what to do."""


class OfflineError(DownloadError):
    """The server could not be reached (DNS failure, refused connection, timeout, dropped link)."""


class ChecksumError(DownloadError):
    """The downloaded bytes are not the expected file (wrong size or SHA-256)."""

    def __init__(self, path: Path, what: str, expected: str, actual: str) -> None:
        self.path, self.what, self.expected, self.actual = path, what, expected, actual
        super().__init__(
            f"The download of '{path.name}' is not the expected file: {what} mismatch "
            f"(expected {expected}, got {actual}). The partial file was deleted. Run the download "
            f"again, or use another source (--base-url {MIRROR_BASE_URL}), or place a correct copy at '{path}'."
        )


class DownloadCancelled(DownloadError):
    """``cancel()`` returned True; the ``.part`` file is kept so a later call resumes."""


class _Retry(Exception):
    """Internal: a transient failure; try again after a pause (resuming the part file)."""

    def __init__(self, reason: str, *, offline: bool) -> None:
        super().__init__(reason)
        self.offline = offline


def part_path(dest: Path) -> Path:
    """The temporary file used while ``dest`` downloads (``<name>.part``)."""
    return dest.with_suffix(dest.suffix + ".part")


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """Lower-case hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def _is_verified(path: Path, expected_size: int | None, sha256: str | None) -> bool:
    if expected_size is not None and path.stat().st_size != expected_size:
        return False
    return sha256 is None or file_sha256(path) == sha256


def _opener_for(url: str) -> urllib.request.OpenerDirector:
    host = (urlsplit(url).hostname or "").lower()
    if host in LOCAL_HOSTS or host.endswith(".localhost"):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()  # the default ProxyHandler reads the environment


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total length) from ``bytes a-b/total`` or ``bytes */total``."""
    match = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", header or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _describe(reason: object, timeout: float) -> str:
    if isinstance(reason, socket.gaierror):
        return f"the host name could not be resolved ({reason})"
    if isinstance(reason, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    return str(reason)


def _offline_message(url: str, dest: Path, reason: str) -> str:
    kept = " (the partial download is kept and resumes next time)" if part_path(dest).exists() else ""
    return (
        f"Cannot download '{dest.name}': the server could not be reached: {reason}.\n"
        f"  URL: {url}\n"
        "What to do:\n"
        f"  - check the internet connection or the proxy settings (HTTPS_PROXY / HTTP_PROXY) and run again{kept};\n"
        f"  - or use a mirror, e.g. --base-url {MIRROR_BASE_URL}\n"
        f"  - or download the file yourself and place it at: {dest}"
    )


def _server_message(url: str, dest: Path, problem: str) -> str:
    return (
        f"Cannot download '{dest.name}': {problem}.\n"
        f"  URL: {url}\n"
        f"Try a mirror (--base-url {MIRROR_BASE_URL}) or download the file yourself and place it at: {dest}"
    )


def _sleep(seconds: float, cancel: CancelCheck | None, dest: Path) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        _check_cancel(cancel, dest)
        time.sleep(min(left, 0.1))


def _check_cancel(cancel: CancelCheck | None, dest: Path) -> None:
    if cancel is not None and cancel():
        raise DownloadCancelled(
            f"Download of '{dest.name}' cancelled; the partial file '{part_path(dest)}' is kept "
            "and the next download resumes from it."
        )


class _RangeNotSatisfiable(Exception):
    """Internal: HTTP 416 for our Range request; carries the file length when the server gave it."""

    def __init__(self, total: int | None) -> None:
        super().__init__(total)
        self.total = total


def _request(url: str, dest: Path, offset: int, timeout: float, fail_fast: bool) -> http.client.HTTPResponse:
    """Open ``url`` (asking for bytes from ``offset`` on) and sort failures into retry / give up."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return _opener_for(url).open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            raise _RangeNotSatisfiable(_content_range(exc.headers.get("Content-Range"))[1]) from exc
        if exc.code in _RETRYABLE_HTTP:
            raise _Retry(f"HTTP {exc.code} {exc.reason}", offline=False) from exc
        raise DownloadError(_server_message(url, dest, f"the server answered HTTP {exc.code} {exc.reason}")) from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if fail_fast and isinstance(reason, (socket.gaierror, ConnectionRefusedError)):
            raise OfflineError(_offline_message(url, dest, _describe(reason, timeout))) from exc
        raise _Retry(_describe(reason, timeout), offline=True) from exc
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _Retry(_describe(exc, timeout), offline=True) from exc


def _copy_body(
    response: http.client.HTTPResponse,
    dest: Path,
    offset: int,
    total: int | None,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
    timeout: float,
    chunk_size: int,
) -> None:
    """Append the response body to the part file (truncating it first when ``offset`` is 0)."""
    read = getattr(response, "read1", response.read)
    done = offset
    with open(part_path(dest), "ab" if offset else "wb") as out:
        if progress is not None:
            progress(done, total)
        while True:
            _check_cancel(cancel, dest)
            try:
                chunk = read(chunk_size)
            except http.client.IncompleteRead as exc:
                out.write(exc.partial)
                raise _Retry("the connection was cut", offline=True) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise _Retry(f"the connection was cut ({_describe(exc, timeout)})", offline=True) from exc
            if not chunk:
                break
            out.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    if total is not None and done < total:
        raise _Retry(f"the connection was cut after {done} of {total} bytes", offline=True)


def _transfer(
    url: str,
    dest: Path,
    expected_size: int | None,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
    timeout: float,
    chunk_size: int,
    fail_fast: bool,
) -> None:
    """One HTTP request that resumes (or restarts) the part file. Raises ``_Retry`` on transient failures.

    With ``fail_fast``, a DNS failure or refused connection raises :class:`OfflineError`
    at once instead of being retried.
    """
    part = part_path(dest)
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset > expected_size:
        part.unlink()
        offset = 0
    if expected_size is not None and offset == expected_size and offset > 0:
        return  # a previous run received everything but stopped before renaming
    try:
        response = _request(url, dest, offset, timeout, fail_fast)
    except _RangeNotSatisfiable as exc:
        if exc.total == offset:
            return  # the part file already holds the whole file
        part.unlink()  # the part file does not fit this file: start again
        return _transfer(url, dest, expected_size, progress, cancel, timeout, chunk_size, fail_fast)

    with response:
        length = response.headers.get("Content-Length")
        body_length = int(length) if length is not None and length.isdigit() else None
        if offset and response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:  # a range we did not ask for: start again from zero
                part.unlink()
                return _transfer(url, dest, expected_size, progress, cancel, timeout, chunk_size, fail_fast)
        else:  # 200: a fresh download, or the server ignored our Range header
            offset, total = 0, body_length
        if total is None and body_length is not None:
            total = offset + body_length
        if expected_size is not None and total is not None and total != expected_size:
            part.unlink(missing_ok=True)
            raise ChecksumError(dest, "size", f"{expected_size} bytes", f"{total} bytes (reported by the server)")
        _copy_body(response, dest, offset, total, progress, cancel, timeout, chunk_size)


def download_file(
    url: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    chunk_size: int = 1 << 20,
    backoff: float = 1.0,
    force: bool = False,
) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified, atomic) and return ``dest``.

    An existing ``dest`` that matches ``expected_size``/``sha256`` is kept as is
    unless ``force``.  ``progress(bytes_done, bytes_total_or_None)`` is called as
    bytes arrive (``bytes_done`` counts resumed bytes too).  A cut connection is
    retried up to ``retries`` times, waiting ``backoff * 2**n`` seconds, resuming
    the part file.  Raises :class:`OfflineError`, :class:`ChecksumError`,
    :class:`DownloadCancelled` or :class:`DownloadError` (also for a URL that is not http(s):
    urllib would otherwise read ``file:`` and ``ftp:`` URLs too).
    """
    dest = Path(dest)
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise DownloadError(
            f"Cannot download '{dest.name}': '{url}' is not an http(s) URL. Give an address starting with https://."
        )
    sha256 = sha256.lower() if sha256 else None
    if not force and dest.is_file() and _is_verified(dest, expected_size, sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    start_size = part.stat().st_size if part.exists() else -1
    failures = 0
    while True:
        _check_cancel(cancel, dest)
        # Fail fast on an unreachable host unless this call already received bytes
        # (then the link dropped mid-transfer and is worth retrying).
        received = part.exists() and part.stat().st_size > start_size
        try:
            _transfer(url, dest, expected_size, progress, cancel, timeout, chunk_size, not received)
            break
        except _Retry as exc:
            failures += 1
            if failures > retries:
                if exc.offline:
                    raise OfflineError(_offline_message(url, dest, str(exc))) from exc
                raise DownloadError(_server_message(url, dest, f"the server kept failing ({exc})")) from exc
            _sleep(backoff * 2 ** (failures - 1), cancel, dest)

    actual_size = part.stat().st_size
    if expected_size is not None and actual_size != expected_size:
        part.unlink()
        raise ChecksumError(dest, "size", f"{expected_size} bytes", f"{actual_size} bytes")
    if sha256 is not None:
        actual = file_sha256(part)
        if actual != sha256:
            part.unlink()
            raise ChecksumError(dest, "SHA-256", sha256, actual)
    os.replace(part, dest)
    return dest


def download_assets(
    assets: Iterable[Asset],
    root: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    progress: AssetProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    *,
    force: bool = False,
    timeout: float = 30.0,
    retries: int = 3,
) -> list[Path]:
    """Download registry entries into ``root`` (default: the assets folder); return their paths.

    ``progress(asset, bytes_done, bytes_total_or_None)``.  Files already present and
    verified are skipped unless ``force``; with ``force`` the old file stays in
    place until the new copy is verified.
    """
    paths = []
    for asset in assets:
        dest = asset_path(asset, root)
        if force:
            part_path(dest).unlink(missing_ok=True)
        report = None
        if progress is not None:

            def report(done: int, total: int | None, asset: Asset = asset) -> None:
                progress(asset, done, total)

        paths.append(
            download_file(
                asset.url(base_url),
                dest,
                expected_size=asset.size,
                sha256=asset.sha256,
                progress=report,
                cancel=cancel,
                timeout=timeout,
                retries=retries,
                force=force,
            )
        )
    return paths
