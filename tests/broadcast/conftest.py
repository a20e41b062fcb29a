"""应急广播 fixtures: a village with three terminals (one off line), the HTTP adapter pointed at the local
platform simulator, whose receipts go back into the app in process, all on the test's fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from channels.broadcast_http import HttpBroadcastAdapter, PlatformConfig
from channels.broadcast_simulator import BroadcastSimulator
from tests.conftest import make_settings
from tests.delivery.conftest import use
from warning_service.broadcast import service
from warning_service.broadcast.models import TerminalIn
from warning_service.db import Database

SECRET = "broadcast-shared-secret-0123456789"
VILLAGE = "331081001001"  # 横湖村, 太平街道, 温岭市
TERMINALS = [("HH-01", "横湖村村委会大喇叭", "WL-T-0001", True), ("HH-02", "横湖村文化礼堂", "WL-T-0002", True),
             ("HH-03", "横湖村溪边", "WL-T-0003", False)]


@pytest.fixture
def settings(db: Database):
    return make_settings(db, broadcast_secret=SECRET)


@pytest.fixture
async def terminals(db, tree, clock) -> list[int]:
    ids = []
    async with db.session() as s:
        for code, name, pid, online in TERMINALS:
            row = await service.create(s, data=TerminalIn(code=code, name=name, region_code=VILLAGE, platform_id=pid,
                                                          online=online), scope_path="/33/", now=clock.now())
            ids.append(row.id)
    return ids


@pytest.fixture
async def simulator(app, clock) -> AsyncIterator[tuple[BroadcastSimulator, str]]:
    """The platform on a real port; its receipts reach the app through ASGI (the app's host is testserver)."""
    receipts = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    sim = BroadcastSimulator(secret=SECRET, offline={"WL-T-0003"}, clock=lambda: clock.now().timestamp(),
                             http=receipts)
    url = await sim.start()
    yield sim, url
    await sim.stop()
    await receipts.aclose()


@pytest.fixture
async def platform(runtime, simulator, clock) -> AsyncIterator[HttpBroadcastAdapter]:
    sim, url = simulator
    adapter = HttpBroadcastAdapter(PlatformConfig(url=url, secret=SECRET, timeout=5.0,
                                                  callback_url="http://testserver/webhooks/broadcast/receipts"),
                                   clock=lambda: clock.now().timestamp())
    use(runtime, adapter, ("broadcast",))
    yield adapter
    await adapter.aclose()
