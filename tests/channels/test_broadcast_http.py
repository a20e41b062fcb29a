"""The 应急广播 platform adapter against the local simulator: the request's shape from a template, the
signature, repeat and priority by level, and how each failure is classified."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from aiohttp import web

from channels.base import BroadcastFields, ChannelConfigError, Message
from channels.broadcast import BroadcastStub
from channels.broadcast_http import HttpBroadcastAdapter, PlatformConfig
from channels.broadcast_simulator import BroadcastSimulator
from channels.registry import build
from tests.conftest import make_settings
from warning_service.delivery.adapters import build_channels

SECRET = "s3cret-for-the-platform"
NOW = 1_782_892_800.0  # 2026-07-01 08:00 UTC


def message(level: str = "red", repeat: int | None = 3, terminals: tuple[str, ...] = ("T-1", "T-2", "T-3")
            ) -> Message:
    return Message(channel="broadcast", address="331081001001", body="各位村民请注意:台风红色预警,请立即转移。",
                   idempotency_key="b331081001001:alert:r1:broadcast:w1", metadata={"kind": "alert"},
                   broadcast=BroadcastFields(zone="331081001001", zone_name="横湖村", town="331081001",
                                             terminals=terminals, level=level, repeat=repeat, kind="alert"))


@pytest.fixture
async def platform():
    sim = BroadcastSimulator(secret=SECRET, offline={"T-3"}, clock=lambda: NOW)
    url = await sim.start()
    yield sim, url
    await sim.stop()


def adapter(url: str, **kw) -> HttpBroadcastAdapter:
    return HttpBroadcastAdapter(PlatformConfig(url=url, secret=kw.pop("secret", SECRET), timeout=kw.pop("timeout", 5.0),
                                               **kw), clock=lambda: NOW)


async def test_one_signed_request_per_village_with_the_default_shape(platform) -> None:
    sim, url = platform
    a = adapter(url, callback_url="https://yj.example.cn/webhooks/broadcast/receipts")
    try:
        result = await a.send(message())
        again = await a.send(message())  # a retry of the same message: same task, played once
    finally:
        await a.aclose()
    assert (result.status, result.provider_id) == ("sent", "b331081001001:alert:r1:broadcast:w1")
    assert again.status == "sent" and len(sim.requests) == 2 and len(sim.tasks) == 1
    body = sim.requests[0].body
    assert body == {"taskId": "b331081001001:alert:r1:broadcast:w1", "zoneCode": "331081001001", "zoneName": "横湖村",
                    "terminalIds": ["T-1", "T-2", "T-3"], "content": "各位村民请注意:台风红色预警,请立即转移。",
                    "repeat": 3, "priority": 1, "playTime": "2026-07-01T16:00:00+08:00",
                    "callbackUrl": "https://yj.example.cn/webhooks/broadcast/receipts"}
    assert sim.refused == 0


async def test_a_county_platforms_own_shape_repeat_and_priority_come_from_settings() -> None:
    seen: list[tuple[dict, dict]] = []

    async def capture(request: web.Request) -> web.Response:
        seen.append((json.loads(await request.read()), dict(request.headers)))
        return web.json_response({"code": 0})

    app = web.Application()
    app.router.add_post("/ebm", capture)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    template = ('{"msg": {"id": {{ task_id | tojson }}, "txt": {{ text | tojson }}, "times": {{ repeat }}, '
                '"level": {{ priority }}}, "areas": [{{ town | tojson }}, {{ zone | tojson }}], '
                '"devices": {{ terminals | tojson }}}')
    a = adapter(f"http://127.0.0.1:{runner.addresses[0][1]}/ebm", request_template=template,
                repeat_by_level={"orange": 5}, priority_by_level={"red": 1, "orange": 9})
    try:
        orange = await a.send(message(level="orange", repeat=2))
        yellow = await a.send(message(level="yellow", repeat=2))
    finally:
        await a.aclose()
        await runner.cleanup()
    assert orange.status == yellow.status == "sent"
    (first, headers), (second, _) = seen
    assert first == {"msg": {"id": "b331081001001:alert:r1:broadcast:w1", "txt": message().body,
                             "times": 5, "level": 9}, "areas": ["331081001", "331081001001"],
                     "devices": ["T-1", "T-2", "T-3"]}
    assert (second["msg"]["times"], second["msg"]["level"]) == (2, 3)  # not listed: the policy's plays
    assert headers["X-Broadcast-Timestamp"] == str(int(NOW)) and len(headers["X-Broadcast-Signature"]) == 64


def test_a_template_that_does_not_make_a_json_object_stops_start_up(db) -> None:
    with pytest.raises(ChannelConfigError, match="BROADCAST_REQUEST_TEMPLATE"):
        HttpBroadcastAdapter(PlatformConfig(url="http://x", secret="s", request_template='{"a": {{ nope }}}'))
    with pytest.raises(ChannelConfigError, match="BROADCAST_REQUEST_TEMPLATE"):
        HttpBroadcastAdapter(PlatformConfig(url="http://x", secret="s", request_template="[{{ repeat }}]"))
    with pytest.raises(SystemExit, match="BROADCAST_SECRET"):
        build_channels(make_settings(db, channel_adapters="broadcast=http", broadcast_platform_url="http://x"))
    with pytest.raises(SystemExit, match="BROADCAST_REPEAT_BY_LEVEL"):
        build_channels(make_settings(db, channel_adapters="broadcast=http", broadcast_platform_url="http://x",
                                     broadcast_secret="s", broadcast_repeat_by_level="purple=3"))


def test_the_stub_stays_the_default_and_http_is_chosen_by_name(db) -> None:
    assert isinstance(build({"broadcast": "stub"}, {}).get("broadcast"), BroadcastStub)
    chosen = build_channels(make_settings(db, channel_adapters="broadcast=http", broadcast_platform_url="http://x",
                                          broadcast_secret="s")).get("broadcast").inner  # behind its ProviderGate
    assert isinstance(chosen, HttpBroadcastAdapter)
    assert chosen.config.callback_url == "http://testserver/webhooks/broadcast/receipts"


async def test_a_wrong_secret_is_refused_by_the_platform_and_not_retried(platform) -> None:
    sim, url = platform
    a = adapter(url, secret="wrong")
    try:
        r = await a.send(message())
    finally:
        await a.aclose()
    assert (r.status, r.error_code, r.retryable) == ("failed", "auth_refused", False)
    assert sim.refused == 1 and sim.tasks == {}


async def test_busy_platform_is_not_sent_and_retried_a_refused_connection_too(platform) -> None:
    sim, url = platform
    sim.answers = [503, 429]
    a = adapter(url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/api/broadcast"
    nowhere = adapter(closed)
    try:
        busy, throttled, refused = await a.send(message()), await a.send(message()), await nowhere.send(message())
    finally:
        await a.aclose()
        await nowhere.aclose()
    for r, code in ((busy, "http_503"), (throttled, "http_429"), (refused, "connect")):
        assert (r.error_code, r.retryable, r.not_sent) == (code, True, True)


async def test_a_platform_that_hangs_times_out_as_maybe_sent(platform) -> None:
    hang = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await hang.wait()
        return web.json_response({"code": 0})

    app = web.Application()
    app.router.add_post("/api/broadcast", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    a = adapter(f"http://127.0.0.1:{runner.addresses[0][1]}/api/broadcast", timeout=0.2)
    try:
        r = await a.send(message())
    finally:
        hang.set()
        await a.aclose()
        await runner.cleanup()
    # The platform may have taken it: retried later with the same task id, never handed elsewhere.
    assert (r.error_code, r.retryable, r.not_sent) == ("timeout", True, False)
