"""The keep-alive HTTP/1.1 pool under the Twilio client, against real local servers: aiohttp's, and a raw asyncio
server for what a well-behaved one never does (chunked bodies, closing idle connections, never answering)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twilio.rest import Client

from channels.http11 import ConnectionPool, HttpConnectError, RemoteDisconnected
from channels.twilio_common import QuietHttpClient
from channels.twilio_config import classify

Handler = Callable[["RawConnection"], Awaitable[None]]


class RawConnection:
    """One accepted connection of RawServer: read whole requests, write whatever bytes the test wants."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read_request(self) -> bytes | None:
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return head + await self.reader.readexactly(length)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


class RawServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(RawConnection(reader, writer))
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/2010-04-01/Messages.json"


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def start(handler: Handler) -> RawServer:
        server = RawServer(handler)
        server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
        servers.append(server)
        return server

    yield start
    for s in servers:
        assert s.server is not None
        s.server.close()


def answer(body: bytes = b'{"sid": "SM1"}', *, status: str = "201 Created", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run callbacks (no clock involved) until `condition` holds."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def post(pool: ConnectionPool, url: str, body: bytes = b"To=%2B8613900000001") -> tuple[int, bytes]:
    r = await pool.request("POST", url, body=body, authorization="Basic eA==",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    return r.status, r.body


async def test_requests_reuse_kept_alive_connections_and_never_open_more_than_the_limit() -> None:
    peers: set[int] = set()
    open_now = most_open = 0
    gate = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        nonlocal open_now, most_open
        peers.add(request.transport.get_extra_info("peername")[1])
        open_now += 1
        most_open = max(most_open, open_now)
        if most_open == 5:
            gate.set()
        await gate.wait()  # the first five meet here: the limit is reached before any answer
        open_now -= 1
        return web.json_response({"form": dict(await request.post())}, status=201)

    app = web.Application()
    app.router.add_post("/x", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    pool = ConnectionPool(5)
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/x"
        results = await asyncio.gather(*(post(pool, url, f"n={i}".encode()) for i in range(40)))
    finally:
        await pool.close()
        await runner.cleanup()
    assert [r[0] for r in results] == [201] * 40
    assert [r[1] for r in results] == [f'{{"form": {{"n": "{i}"}}}}'.encode() for i in range(40)]
    assert most_open == 5 and len(peers) == 5


async def test_a_chunked_answer_is_read_whole(raw_server) -> None:
    async def handler(c: RawConnection) -> None:
        while await c.read_request():
            await c.send(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Twilio: a\r\n\r\n"
                         b"5\r\n{\"sid\r\n")
            await c.send(b"8\r\n\": \"SM1\"\r\n1\r\n}\r\n0\r\n\r\n")

    server = await raw_server(handler)
    pool = ConnectionPool(2)
    try:
        first = await pool.request("POST", server.url, body=b"a=1")
        second = await pool.request("POST", server.url, body=b"a=2")
    finally:
        await pool.close()
    assert (first.status, first.body, first.headers["x-twilio"]) == (201, b'{"sid": "SM1"}', "a")
    assert second.body == b'{"sid": "SM1"}' and server.connections == 1


async def test_connection_close_is_honoured_even_when_the_server_keeps_the_socket_open(raw_server) -> None:
    async def handler(c: RawConnection) -> None:
        await c.read_request()
        await c.send(answer(extra="Connection: close\r\n"))
        if await c.read_request():  # only a client ignoring the header sends a second request here
            server.requests.append(b"reused")
            await c.send(answer(b"reused", status="500 Internal Server Error"))

    server = await raw_server(handler)
    pool = ConnectionPool(2)
    try:
        first = await pool.request("GET", server.url)
        second = await pool.request("GET", server.url)
    finally:
        await pool.close()
    assert first.body == second.body == b'{"sid": "SM1"}'
    assert server.connections == 2 and server.requests == []


async def test_a_body_without_length_ends_at_the_close(raw_server) -> None:
    async def handler(c: RawConnection) -> None:
        await c.read_request()
        await c.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"sid\": ")
        await c.send(b"\"SM2\"}")

    server = await raw_server(handler)
    pool = ConnectionPool(2)
    try:
        response = await pool.request("GET", server.url)
    finally:
        await pool.close()
    assert response.body == b'{"sid": "SM2"}'


async def test_a_connection_the_server_closed_while_idle_is_replaced_before_anything_is_written(raw_server) -> None:
    async def handler(c: RawConnection) -> None:
        request = await c.read_request()
        server.requests.append(request or b"")
        await c.send(answer())  # keep-alive by HTTP/1.1's default, then closed anyway: an idle timeout

    server = await raw_server(handler)
    pool = ConnectionPool(2)
    try:
        assert (await post(pool, server.url))[0] == 201
        await until(lambda: pool.open_connections == 0)  # the close arrived while the connection was idle
        assert (await post(pool, server.url))[0] == 201
    finally:
        await pool.close()
    assert server.connections == 2 and len(server.requests) == 2


async def test_a_connection_the_server_wrote_to_while_idle_is_not_reused(raw_server) -> None:
    async def handler(c: RawConnection) -> None:
        server.requests.append(await c.read_request() or b"")
        await c.send(answer())
        await c.send(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")  # and the socket stays open
        if await c.read_request():
            server.requests.append(b"reused")
            await c.send(answer(b"reused"))

    server = await raw_server(handler)
    pool = ConnectionPool(2)
    try:
        assert await post(pool, server.url) == (201, b'{"sid": "SM1"}')  # not the 408 that came after it
        await until(lambda: pool.open_connections == 0)
        assert await post(pool, server.url) == (201, b'{"sid": "SM1"}')
    finally:
        await pool.close()
    assert server.connections == 2 and b"reused" not in server.requests


async def test_a_request_whose_connection_drops_before_the_answer_is_not_sent_again(raw_server) -> None:
    async def handler(c: RawConnection) -> None:
        server.requests.append(await c.read_request() or b"")
        # closed without an answer: the SMS may have been accepted

    server = await raw_server(handler)
    pool = ConnectionPool(2)
    try:
        with pytest.raises(RemoteDisconnected) as raised:
            await post(pool, server.url)
    finally:
        await pool.close()
    assert len(server.requests) == 1 and server.connections == 1
    result = classify(raised.value)
    assert (result.status, result.error_code, result.retryable) == ("failed", "network", True)


async def test_a_server_that_never_answers_times_out_and_its_connection_is_not_reused(raw_server) -> None:
    answered = asyncio.Event()

    async def handler(c: RawConnection) -> None:
        while request := await c.read_request():
            server.requests.append(request)
            if b"hang" in request:
                await answered.wait()  # the first request is never answered
            else:
                await c.send(answer())

    server = await raw_server(handler)
    pool = ConnectionPool(1)
    try:
        with pytest.raises(TimeoutError) as raised:
            async with asyncio.timeout(0.2):
                await post(pool, server.url, b"hang=1")
        assert (await post(pool, server.url))[0] == 201
        assert pool.open_connections == 1  # the timed-out one was closed, not kept
    finally:
        answered.set()
        await pool.close()
    assert server.connections == 2 and len(server.requests) == 2
    assert classify(raised.value).error_code == "timeout"


async def test_an_interim_100_continue_is_skipped_for_the_real_answer(raw_server) -> None:
    async def handler(c: RawConnection) -> None:
        await c.read_request()
        await c.send(b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n" + answer(b'{"sid": "SM3"}'))

    server = await raw_server(handler)
    pool = ConnectionPool(1)
    try:
        response = await pool.request("POST", server.url, body=b"a=1")
    finally:
        await pool.close()
    assert (response.status, response.body) == (201, b'{"sid": "SM3"}') and "X-Interim" not in response.headers


async def test_a_garbled_answer_is_a_network_error(raw_server) -> None:
    async def handler(c: RawConnection) -> None:
        await c.read_request()
        await c.send(b"SMTP ready\r\n\r\n")

    server = await raw_server(handler)
    pool = ConnectionPool(1)
    try:
        with pytest.raises(ConnectionError) as raised:
            await post(pool, server.url)
    finally:
        await pool.close()
    assert classify(raised.value).error_code == "network"


async def test_nobody_listening_fails_to_connect_as_a_network_error() -> None:
    pool = ConnectionPool(1)
    try:
        with pytest.raises(HttpConnectError) as raised:
            await post(pool, "http://127.0.0.1:9/x")
    finally:
        await pool.close()
    assert classify(raised.value).error_code == "network"


async def test_the_request_head_carries_the_query_host_and_headers_and_refuses_line_breaks(raw_server) -> None:
    async def handler(c: RawConnection) -> None:
        while request := await c.read_request():
            server.requests.append(request)
            await c.send(answer())

    server = await raw_server(handler)
    pool = ConnectionPool(1)
    try:
        await pool.request("GET", server.url, params={"To": "+86 139", "PageSize": 2},
                           headers={"Accept": "application/json"}, authorization="Basic eA==")
        with pytest.raises(ValueError, match="CR, LF"):
            await pool.request("GET", server.url, headers={"X-Evil": "a\r\nX-Injected: 1"})
    finally:
        await pool.close()
    [request] = server.requests
    port = server.url.split(":")[2].split("/")[0]
    assert request.startswith(b"GET /2010-04-01/Messages.json?To=%2B86+139&PageSize=2 HTTP/1.1\r\n"
                              b"Host: 127.0.0.1:" + port.encode() + b"\r\n")
    assert b"\r\nAccept: application/json\r\n" in request and b"\r\nAuthorization: Basic eA==\r\n" in request
    assert request.endswith(b"\r\nContent-Length: 0\r\n\r\n")


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1, and a client context trusting only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return server, ssl.create_default_context(cafile=str(cert_file))


async def test_twilio_over_tls_sends_and_parses_through_the_pool_and_an_untrusted_certificate_is_refused(
        tmp_path: Path, fake_twilio) -> None:
    from tests.delivery.fake_twilio import ACCOUNT_SID, AUTH_TOKEN

    server_context, client_context = self_signed(tmp_path)
    runner = web.AppRunner(fake_twilio.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    base_url = f"https://127.0.0.1:{runner.addresses[0][1]}"
    trusting, default = QuietHttpClient(4, ssl_context=client_context), QuietHttpClient(4)
    try:
        client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=trusting, environment={})
        client.api.base_url = base_url
        messages = [await client.messages.create_async(to=f"+861390000000{i}", from_="+15005550006", body="预警")
                    for i in range(3)]
        assert trusting.pool.open_connections == 1
        untrusting = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=default, environment={})
        untrusting.api.base_url = base_url
        with pytest.raises(HttpConnectError) as raised:
            await untrusting.messages.create_async(to="+8613900000009", from_="+15005550006", body="预警")
    finally:
        await trusting.close()
        await default.close()
        await runner.cleanup()
    assert [m.sid[:2] for m in messages] == ["SM"] * 3 and messages[0].status == "queued"
    assert [r["form"]["Body"] for r in fake_twilio.messages()] == ["预警"] * 3
    assert isinstance(raised.value.__cause__, ssl.SSLCertVerificationError)
    assert classify(raised.value).error_code == "network"


async def test_the_twilio_response_keeps_status_text_and_case_insensitive_headers(raw_server) -> None:
    async def handler(c: RawConnection) -> None:
        await c.read_request()
        await c.send(answer('{"message": "无效号码"}'.encode(), status="400 Bad Request",
                            extra="Twilio-Request-Id: RQ1\r\n"))

    server = await raw_server(handler)
    http = QuietHttpClient(1)
    try:
        response = await http.request("POST", server.url, data={"To": "1"}, auth=("AC1", "tok"))
    finally:
        await http.close()
    assert (response.status_code, response.ok, response.text) == (400, False, '{"message": "无效号码"}')
    assert response.headers["twilio-request-id"] == "RQ1" and dict(response.headers)["Twilio-Request-Id"] == "RQ1"
