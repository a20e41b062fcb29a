"""A small keep-alive HTTP/1.1 client for one provider's REST API: pooled connections, httptools for parsing.

aiohttp spends more CPU per request than the rest of an SMS's path through the twilio library (issue 17):
per-call timeout and auth objects, URL and header machinery, a stream reader. A provider API needs a
fraction of that: a request whose head repeats from call to call, a response read whole.

Never resending a request that may have reached the provider matters more than anything here, since a
resent Messages.create is a second SMS. So the only retry is taking another connection when a pooled one
is found closed BEFORE anything is written to it; once a byte is handed to the transport, a failure is
raised to the caller (a transient "network" error) and nothing is sent again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["ConnectionPool", "HttpConnectError", "HttpProtocolError", "HttpResponse", "RemoteDisconnected"]


class HttpConnectError(ConnectionError):
    """The connection could not be opened: nothing of the request was sent."""


class RemoteDisconnected(ConnectionError):
    """The server closed the connection before the response was complete: the request may have arrived."""


class HttpProtocolError(ConnectionError):
    """The server's bytes are not an HTTP/1.1 response."""


class HttpResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: CIMultiDictProxy[str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def text(self) -> str:
        content_type = self.headers.get("Content-Type", "")
        charset = "utf-8"
        for part in content_type.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.body.decode(charset, "replace")
        except LookupError:
            return self.body.decode("utf-8", "replace")


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; parses one response at a time."""

    def __init__(self, origin: tuple[str, str, int]) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.headers_done = False
        self.framed = False  # Content-Length or chunked: the end is in the bytes, not at the close
        self.done = False
        self.keep_alive = False
        self.response: HttpResponse | None = None

    # asyncio.Protocol

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.done:
            # Bytes nobody asked for (e.g. a 408 before closing an idle connection): never reuse it.
            self._close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(HttpProtocolError(f"bad response from {self.origin[1]}: {exc}"))
            self._close()

    def eof_received(self) -> bool:
        # The server half-closed: no further request may go on this connection.
        self.closed = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            if self.headers_done and not self.framed:
                self._finish(None)  # a body delimited by the close is complete now
            else:
                self._finish(RemoteDisconnected(f"{self.origin[1]} closed the connection before answering"
                                                + (f": {exc}" if exc else "")))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))
        if not self.framed and name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True
        status = self.parser.get_status_code()
        if status < 200 or status in (204, 304):
            self.framed = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.done:  # the end of a second answer (see on_message_begin): the first one stands
            return
        if self.parser.get_status_code() < 200:
            # An interim response (100 Continue): the real one follows on the same connection.
            self.headers, self.body, self.headers_done, self.framed = [], [], False, False
            return
        self.done = True
        # Read here: once the parser returns from this message it no longer knows, and bytes after it (a
        # server writing more than one answer) must not touch what is returned.
        self.keep_alive = self.parser.should_keep_alive()
        self.response = HttpResponse(self.parser.get_status_code(), CIMultiDictProxy(CIMultiDict(self.headers)),
                                     b"".join(self.body))
        self._finish(None)

    def on_message_begin(self) -> None:
        if self.done:  # a second answer to one request: the connection's state is no longer known
            self.closed = True

    # ours

    def _finish(self, exc: BaseException | None) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    async def exchange(self, request: bytes) -> HttpResponse:
        self.headers, self.body = [], []
        self.headers_done = self.framed = self.done = self.keep_alive = False
        self.response = None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)  # type: ignore[union-attr]
        try:
            await self.waiter
        finally:
            self.waiter = None
        if not self.keep_alive or self.closed:
            self._close()
        if self.response is None:  # the body ran to the close of the connection
            return HttpResponse(self.parser.get_status_code(), CIMultiDictProxy(CIMultiDict(self.headers)),
                                b"".join(self.body))
        return self.response


class ConnectionPool:
    """Keep-alive connections to a few origins, at most `max_connections` open at once."""

    def __init__(self, max_connections: int = 100, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.max_connections = max_connections
        self._ssl = ssl_context
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._all: set[_Connection] = set()
        self._heads: dict[tuple[Any, ...], tuple[tuple[str, str, int], bytes]] = {}
        self._closed = False

    @property
    def open_connections(self) -> int:
        return sum(1 for c in self._all if c.usable())

    async def request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                      headers: Mapping[str, str] | None = None, body: bytes = b"",
                      authorization: str | None = None) -> HttpResponse:
        """One request and its whole response; raises a ConnectionError (an OSError). No deadline of its own:
        the caller's asyncio.timeout cancels it, and the connection it was using is dropped."""
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        origin, head = self._head(method, url, params, headers, authorization)
        request = b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
        async with self._slots:
            conn = await self._connection(origin)
            try:
                response = await conn.exchange(request)
            except BaseException:
                # Timed out, cancelled or failed mid-exchange: the answer may still come, so the
                # connection cannot carry another request.
                self._discard(conn)
                raise
            if conn.usable():
                self._idle.setdefault(origin, deque()).append(conn)
            else:
                self._discard(conn)
            return response

    def _head(self, method: str, url: str, params: Mapping[str, Any] | None, headers: Mapping[str, str] | None,
              authorization: str | None) -> tuple[tuple[str, str, int], bytes]:
        """The request's head up to Content-Length, built once per endpoint and header set."""
        key = (method, url, tuple(headers.items()) if headers else (), authorization)
        if not params:
            cached = self._heads.get(key)
            if cached is not None:
                return cached
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        default_port = 443 if parts.scheme == "https" else 80
        origin = (parts.scheme, parts.hostname, parts.port or default_port)
        target = parts.path or "/"
        query = "&".join(q for q in (parts.query, urlencode(params, doseq=True) if params else "") if q)
        if query:
            target += "?" + query
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        if parts.port not in (None, default_port):
            host += f":{parts.port}"
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
        for name, value in (headers or {}).items():
            if name.lower() not in ("host", "content-length", "transfer-encoding", "connection"):
                lines.append(f"{name}: {value}")
        if authorization is not None:
            lines.append(f"Authorization: {authorization}")
        if any(c in line for line in lines for c in "\r\n\0"):
            raise ValueError("CR, LF or NUL in the request line or a header")
        built = origin, ("\r\n".join(lines) + "\r\n").encode("latin-1")
        if not params:
            if len(self._heads) >= 256:  # a handful of endpoints in practice; bounded all the same
                self._heads.clear()
            self._heads[key] = built
        return built

    async def _connection(self, origin: tuple[str, str, int]) -> _Connection:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()  # the most recently used is the least likely to have been closed by the server
            if conn.usable():
                return conn
            # Closed by the server while idle, seen before anything was written: taking another is safe.
            self._discard(conn)
        self._make_room()
        return await self._connect(origin)

    def _make_room(self) -> None:
        # Idle connections to other origins give way so that no more than max_connections are ever open.
        excess = len(self._all) - self.max_connections + 1
        for queue in self._idle.values():
            while excess > 0 and queue:
                self._discard(queue.popleft())
                excess -= 1

    async def _connect(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        conn = _Connection(origin)
        context: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            await loop.create_connection(lambda: conn, host, port, ssl=context,
                                         server_hostname=host if context else None)
        except OSError as exc:
            conn.abort()
            raise HttpConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        except BaseException:
            conn.abort()
            raise
        self._all.add(conn)
        return conn

    def _discard(self, conn: _Connection) -> None:
        if conn.transport is not None and not conn.transport.is_closing():
            conn.abort()
        conn.closed = True
        self._all.discard(conn)

    async def close(self) -> None:
        self._closed = True
        for conn in list(self._all):
            conn._close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks
