"""The server's guard: private files per browser session, an upload size cap and back-off on failed logins.

:class:`StudioGuard` is an ASGI middleware put in front of the Gradio app (see
:func:`guard_middleware`).  Each browser gets a random ``rvc_session`` cookie
(HttpOnly, SameSite=Strict).  The guard records every file of Gradio's
private temporary folder that a session uploaded (``/gradio_api/upload``) or
was shown in a response (outputs in the queue's event stream, ``/config``
...), and then:

- serves ``/gradio_api/file=...`` only for files of the asking session (404
  otherwise, the same answer for a file that exists and one that does not);
- refuses an API call whose inputs name a file the session did not upload or
  receive (so no client can make the server read an arbitrary path, nor
  another session's upload);
- rewrites Gradio's "too large" upload answer into a message naming the limit;
- answers 429 to a client address after :data:`FREE_LOGIN_FAILURES` wrong
  passwords, for a delay that doubles with each further failure.

API clients keep the cookie of their first response: ``gradio_client`` does
that by itself (it sends the cookies of ``/config`` with every later request).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SESSION_COOKIE = "rvc_session"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
_PATH_FIELD = re.compile(rb'"path"\s*:\s*"((?:[^"\\]|\\.)*)"')
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/")  # same length: the file's path follows either
UPLOAD_ROUTE = "/gradio_api/upload"
CALL_ROUTES = ("/gradio_api/queue/join", "/gradio_api/call/", "/gradio_api/run/", "/gradio_api/api/")
LOGIN_ROUTE = "/login"
MAX_CALL_BODY = 16 * 1024 * 1024  # an API call carries file references, never file contents
MAX_SCANNED_LINE = 8 * 1024 * 1024
MAX_SESSIONS = 4096
MAX_FILES_PER_SESSION = 4096
FREE_LOGIN_FAILURES = 5
FIRST_LOGIN_DELAY_S = 1.0
MAX_LOGIN_DELAY_S = 300.0
MAX_LOGIN_ADDRESSES = 4096
FOREIGN_FILE = (
    "A file in this request was not uploaded in this browser session (or it has expired). "
    "Upload the file again; API clients must send back the rvc_session cookie of their first response."
)


def real(path: str | os.PathLike[str]) -> str:
    """``path`` absolute with symlinks resolved (how the guard compares files)."""
    return os.path.realpath(os.fspath(path))


class SessionFiles:
    """Which files of the private temporary folder each session may use; bounded, least recently used first out.

    ``shared`` files (the app's own, cached when the UI was built) are open to every session.
    """

    def __init__(self, root: str | os.PathLike[str], shared: Iterable[str] = ()) -> None:
        self.root = real(root)
        self.shared = {real(p) for p in shared}
        self._files: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()
        self._lock = threading.Lock()

    def inside(self, path: str) -> bool:
        """Whether ``path`` lies in the private temporary folder (uploads and Gradio's cached outputs)."""
        resolved = real(path)
        return resolved == self.root or resolved.startswith(self.root + os.sep)

    def add(self, session: str, paths: Iterable[str]) -> None:
        """Record ``paths`` (those inside the temporary folder) as files of ``session``."""
        kept = [real(p) for p in paths if isinstance(p, str) and p and self.inside(p)]
        if not kept:
            return
        with self._lock:
            files = self._files.pop(session, None) or OrderedDict()
            self._files[session] = files
            for path in kept:
                files.pop(path, None)
                files[path] = None
            while len(files) > MAX_FILES_PER_SESSION:
                files.popitem(last=False)
            while len(self._files) > MAX_SESSIONS:
                self._files.popitem(last=False)

    def owns(self, session: str | None, path: str) -> bool:
        """Whether ``session`` may read ``path`` (its own upload or output, or a shared file)."""
        resolved = real(path)
        if resolved in self.shared:
            return True
        with self._lock:
            files = self._files.get(session or "")
            return files is not None and resolved in files


class LoginBackoff:
    """Failed logins per client address: after :data:`FREE_LOGIN_FAILURES`, a delay that doubles each time."""

    def __init__(self, first_delay: float = FIRST_LOGIN_DELAY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.first_delay = first_delay
        self.clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # address → (count, locked until)
        self._lock = threading.Lock()

    def wait_seconds(self, address: str) -> float:
        """How long ``address`` must wait before its next login attempt (0: it may try now)."""
        with self._lock:
            _, until = self._failures.get(address, (0, 0.0))
        return max(until - self.clock(), 0.0)

    def failed(self, address: str) -> None:
        with self._lock:
            count, _ = self._failures.pop(address, (0, 0.0))
            count += 1
            extra = count - FREE_LOGIN_FAILURES
            delay = 0.0 if extra < 0 else min(self.first_delay * 2**extra, MAX_LOGIN_DELAY_S)
            self._failures[address] = (count, self.clock() + delay)
            while len(self._failures) > MAX_LOGIN_ADDRESSES:
                self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)


def session_of(scope: Scope) -> str | None:
    """The session token of the request's ``rvc_session`` cookie, or None when it has none (or a malformed one)."""
    for name, value in scope.get("headers", ()):
        if name != b"cookie":
            continue
        try:
            cookie = SimpleCookie(value.decode("latin-1"))
        except CookieError:
            continue
        if SESSION_COOKIE in cookie and _TOKEN.match(cookie[SESSION_COOKIE].value):
            return cookie[SESSION_COOKIE].value
    return None


def file_references(data: object) -> Iterator[str]:
    """Every path named by a ``{"path": ...}`` object anywhere in a decoded JSON request.

    URLs are yielded too: Gradio would download an ``http(s)`` "path" on the
    server (a server-side request), and they are never files of a session.
    """
    if isinstance(data, dict):
        path = data.get("path")
        if isinstance(path, str) and path:
            yield path
        for value in data.values():
            yield from file_references(value)
    elif isinstance(data, list):
        for value in data:
            yield from file_references(value)


def paths_in_text(chunk: bytes) -> list[str]:
    """The values of ``"path": "..."`` fields in a JSON or event-stream text."""
    found = []
    for match in _PATH_FIELD.finditer(chunk):
        try:
            found.append(json.loads(b'"' + match.group(1) + b'"'))
        except ValueError:
            continue
    return found


async def _answer(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail, "error": detail}).encode()
    start_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*start_headers, *headers]})
    await send({"type": "http.response.body", "body": body})


class StudioGuard:
    """The ASGI middleware (see the module docstring); ``files`` and ``logins`` hold its state."""

    def __init__(self, app: ASGIApp, *, files: SessionFiles, logins: LoginBackoff, max_upload_mb: float) -> None:
        self.app = app
        self.files = files
        self.logins = logins
        self.max_upload_mb = max_upload_mb

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session = session_of(scope)
        new_cookie = None
        if session is None:
            session = new_cookie = secrets.token_urlsafe(24)
        send = self._with_cookie(send, new_cookie)
        path, method = scope["path"], scope["method"]
        if path.startswith(FILE_ROUTES):
            await self._serve_file(scope, receive, send, session, path[len(FILE_ROUTES[0]) :])
        elif method == "POST" and path.rstrip("/") == LOGIN_ROUTE:
            await self._login(scope, receive, send)
        elif method == "POST" and path == UPLOAD_ROUTE:
            await self.app(scope, receive, self._recording_upload(send, session))
        elif method == "POST" and path.startswith(CALL_ROUTES):
            await self._call(scope, receive, send, session)
        else:
            await self.app(scope, receive, self._recording_paths(send, session))

    def _with_cookie(self, send: Send, token: str | None) -> Send:
        if token is None:
            return send
        cookie = f"{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict".encode()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (b"set-cookie", cookie)]}
            await send(message)

        return sending

    async def _serve_file(self, scope: Scope, receive: Receive, send: Send, session: str, target: str) -> None:
        from gradio.data_classes import _StaticFiles
        from gradio.utils import is_in_or_equal

        if target and not target.startswith(("http://", "https://")):
            if self.files.owns(session, target):
                await self.app(scope, receive, send)
                return
            if not self.files.inside(target) and any(is_in_or_equal(target, p) for p in _StaticFiles.all_paths):
                await self.app(scope, receive, send)
                return
        await _answer(send, 404, "Not found.")

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        address = (scope.get("client") or ("?", 0))[0]
        wait = self.logins.wait_seconds(address)
        if wait > 0:
            seconds = int(wait) + 1
            detail = f"Too many wrong passwords from this address: try again in {seconds} s."
            await _answer(send, 429, detail, [(b"retry-after", str(seconds).encode())])
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] in (400, 401, 403):
                    self.logins.failed(address)
                elif message["status"] < 300:
                    self.logins.succeeded(address)
            await send(message)

        await self.app(scope, receive, sending)

    async def _call(self, scope: Scope, receive: Receive, send: Send, session: str) -> None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_CALL_BODY:
                await _answer(send, 413, "This request is too large: send files through the upload route.")
                return
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            references = list(file_references(json.loads(body))) if body else []
        except ValueError:
            references = []  # not JSON: Gradio answers it
        if any(not self.files.owns(session, path) for path in references):
            await _answer(send, 403, FOREIGN_FILE)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, self._recording_paths(send, session))

    def _recording_upload(self, send: Send, session: str) -> Send:
        """Record the uploaded paths Gradio answers with; turn its 413 into a message that names the limit."""
        state: dict[str, Any] = {"status": 200, "body": b""}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                if message["status"] == 413:
                    limit = f"{self.max_upload_mb:g} MB"
                    detail = f"The file is larger than this server's upload limit of {limit} per file. "
                    detail += "Upload a smaller file, or start the server with --max-upload-mb N."
                    await _answer(send, 413, detail)
                    return
            elif message["type"] == "http.response.body":
                if state["status"] == 413:
                    return
                if state["status"] == 200:
                    state["body"] += message.get("body", b"")
                    if not message.get("more_body"):
                        try:
                            uploaded = json.loads(state["body"])
                        except ValueError:
                            uploaded = []
                        self.files.add(session, uploaded if isinstance(uploaded, list) else [])
            await send(message)

        return sending

    def _recording_paths(self, send: Send, session: str) -> Send:
        """Record the files a JSON or event-stream response shows to ``session`` (outputs, cached values)."""
        state: dict[str, Any] = {"scan": False, "tail": b""}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", ()))
                kind = headers.get(b"content-type", b"")
                state["scan"] = kind.startswith((b"application/json", b"text/event-stream"))
            elif message["type"] == "http.response.body" and state["scan"]:
                text = state["tail"] + message.get("body", b"")
                cut = len(text) if not message.get("more_body") else text.rfind(b"\n") + 1
                self.files.add(session, paths_in_text(text[:cut]))
                state["tail"] = text[cut:] if len(text) - cut <= MAX_SCANNED_LINE else b""
            await send(message)

        return sending


def guard_middleware(upload_folder: str | os.PathLike[str], max_upload_mb: float) -> Any:
    """The ``starlette.middleware.Middleware`` entry for ``launch(app_kwargs={"middleware": [...]})``.

    Files already in ``upload_folder`` (the app's own, cached while the UI was built) are shared.
    """
    from starlette.middleware import Middleware

    folder = Path(upload_folder)
    shared = [str(p) for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    files = SessionFiles(folder, shared)
    return Middleware(StudioGuard, files=files, logins=LoginBackoff(), max_upload_mb=max_upload_mb)
