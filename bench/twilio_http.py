"""Client CPU per request of the Twilio HTTP clients, against the local fake Twilio in a process of its own.

    python -m bench.twilio_http [--requests 10000] [--concurrency 500] [--latency 20ms] [--level http|twilio]
                                [--clients aiohttp,lean-aiohttp,pool] [--uvloop]

`--level http` calls the HTTP client's `request` as the twilio library does (Messages.create's URL, headers,
form and auth); `--level twilio` goes through the library (`client.messages.create_async`), as the adapter
does. Clients: `aiohttp` is the library's AsyncTwilioHttpClient with the quiet logs and table form encoding
(main before issue 17's HTTP work); `lean-aiohttp` keeps aiohttp with the cheapest arguments (one
ClientTimeout, a precomputed Authorization header, bytes body, no per-call bookkeeping); `pool` is
channels.twilio_common.QuietHttpClient (keep-alive pool on httptools). Prints process CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import subprocess
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from bench.latency import latency_fn
from bench.provider_servers import PROVIDERS
from channels.twilio_common import QuietHttpClient, form_encode
from tests.delivery.fake_twilio import ACCOUNT_SID, AUTH_TOKEN

BODY = "【温岭市防汛防台抗旱指挥部】温岭市发布台风红色预警,请立即到岗。回复 1 确认,或点击 http://ws.test/a/abc"


class AiohttpClient(AsyncTwilioHttpClient):
    """The library's client as main used it: quiet logs, the form encoded through a table."""

    def log_request(self, kwargs: dict[str, Any]) -> None:
        pass

    def log_response(self, status_code: int, response: Any) -> None:
        pass

    async def request(self, method: str, url: str, params: Any = None, data: Any = None, headers: Any = None,
                      auth: Any = None, timeout: float | None = None,  # noqa: ASYNC109 — twilio's signature
                      allow_redirects: bool = False) -> Any:
        if isinstance(data, Mapping) and data:
            data = form_encode(data)
        return await super().request(method, url, params=params, data=data, headers=headers, auth=auth,
                                     timeout=timeout, allow_redirects=allow_redirects)


class LeanAiohttpClient(AsyncTwilioHttpClient):
    """Design 1 of issue 17: aiohttp called with the cheapest arguments."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        super().__init__(pool_connections=False)
        self.session = session
        self._timeout = aiohttp.ClientTimeout(total=15.0)
        self._auth: dict[tuple[str, str], str] = {}

    async def request(self, method: str, url: str, params: Any = None, data: Any = None, headers: Any = None,
                      auth: Any = None, timeout: float | None = None,  # noqa: ASYNC109 — twilio's signature
                      allow_redirects: bool = False) -> Any:
        headers = dict(headers or {})
        if auth:
            value = self._auth.get(auth)
            if value is None:
                value = self._auth[auth] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = value
        body = form_encode(data) if data else None
        async with self.session.request(method, url, params=params or None, data=body, headers=headers,
                                        timeout=self._timeout, allow_redirects=False) as r:
            raw = await r.read()
            return Response(r.status, raw.decode("utf-8"), r.headers)


def make_client(name: str, concurrency: int) -> AsyncTwilioHttpClient:
    if name == "aiohttp":
        http = AiohttpClient(pool_connections=False)
        http.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
        return http
    if name == "lean-aiohttp":
        return LeanAiohttpClient(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)))
    if name == "pool":
        return QuietHttpClient(concurrency)
    raise SystemExit(f"unknown client {name}")


def _serve(latency: str, out: Any, stop: Any) -> None:
    async def main() -> None:
        served = await PROVIDERS["twilio"].serve(latency_fn(latency))
        out.put(served.base_url)
        await asyncio.to_thread(stop.wait)
        await served.runner.cleanup()

    asyncio.run(main())


async def measure(name: str, base_url: str, args: argparse.Namespace) -> tuple[float, float, int]:
    http = make_client(name, args.concurrency)
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http, environment={})
    client.api.base_url = base_url
    url = f"{base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    headers = client.get_headers("POST", None)
    auth = (ACCOUNT_SID, AUTH_TOKEN)
    todo = iter(range(args.requests))
    ok = 0

    async def one(i: int) -> None:
        nonlocal ok
        to = f"+86139{i:08d}"
        if args.level == "twilio":
            msg = await client.messages.create_async(to=to, from_="+15005550006", body=BODY,
                                                     status_callback="https://yj.example.gov.cn/webhooks/twilio/status")
            ok += msg.sid is not None
        else:
            r = await http.request("POST", url, data={"To": to, "From": "+15005550006", "Body": BODY,
                                                      "StatusCallback": "https://yj.example.gov.cn/w/s"},
                                   headers=dict(headers), auth=auth)
            ok += r.status_code == 201

    async def lane() -> None:
        for i in todo:
            await one(i)

    await asyncio.gather(*(one(i) for i in range(min(args.concurrency, 50))))  # warm: connections open
    ok = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(args.concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    await http.close()
    return cpu, wall, ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=500)
    ap.add_argument("--latency", default="20ms")
    ap.add_argument("--level", choices=("http", "twilio"), default="http")
    ap.add_argument("--clients", default="aiohttp,lean-aiohttp,pool")
    ap.add_argument("--uvloop", action="store_true")
    args = ap.parse_args()
    ctx = multiprocessing.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(args.latency, out, stop), daemon=True)
    server.start()
    base_url = out.get(timeout=60)
    try:
        print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
        for name in args.clients.split(","):
            if args.uvloop:
                import uvloop
                cpu, wall, ok = uvloop.run(measure(name, base_url, args))
            else:
                cpu, wall, ok = asyncio.run(measure(name, base_url, args))
            print(f"{name:13s} level={args.level} {'uvloop' if args.uvloop else 'asyncio'}: {ok:,} ok of "
                  f"{args.requests:,} in {wall:.1f} s; client CPU {cpu:.2f} s = {cpu / args.requests * 1e6:.0f} "
                  f"µs/request", flush=True)
    finally:
        stop.set()
        server.join(timeout=30)


if __name__ == "__main__":
    main()
