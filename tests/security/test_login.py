"""Login: argon2 never stalls the event loop; failed logins are throttled per username and per address."""

from __future__ import annotations

import asyncio
import time

import httpx
from argon2 import PasswordHasher

from tests.conftest import REDIS_KEYSPACE
from tests.factories import PASSWORD, login
from warning_service.auth import service as auth_service
from warning_service.auth.throttle import LoginThrottle

TOKEN = "/api/v1/auth/token"


async def _try(client, username: str, password: str, ip: str | None = None) -> httpx.Response:
    return await client.post(TOKEN, data={"username": username, "password": password})


async def test_wrong_passwords_do_not_stall_other_requests(client, tree, monkeypatch):
    # 8 wrong passwords take ≥ 4 argon2 rounds on the 2-thread pool; /healthz must answer long before.
    # The suite hashes at argon2's lowest cost; this test needs the production cost it is about.
    real = PasswordHasher()
    monkeypatch.setattr(auth_service, "_hasher", real)
    monkeypatch.setattr(auth_service, "_DUMMY_HASH", real.hash("dummy-password-for-timing"))
    started = time.perf_counter()
    # Unknown names are checked against the dummy hash (so that timing reveals nothing), now at full cost.
    logins = [asyncio.create_task(_try(client, f"nobody-{i}", f"wrong-{i}")) for i in range(8)]
    await asyncio.sleep(0)
    health = await client.get("/healthz")
    healthz_at = time.perf_counter() - started
    results = await asyncio.gather(*logins)
    all_done_at = time.perf_counter() - started
    assert health.status_code == 200
    assert {r.status_code for r in results} == {401}
    assert healthz_at < all_done_at / 2, (healthz_at, all_done_at)


async def test_the_eleventh_failure_for_a_username_is_refused_with_retry_after(client, tree, settings):
    for i in range(settings.login_failures_per_username):
        assert (await _try(client, "wl_duty", f"wrong-{i}")).status_code == 401
    r = await _try(client, "wl_duty", PASSWORD)  # even the right password waits out the window
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= settings.login_window_seconds
    detail = r.json()["detail"]
    assert detail["code"] == "rate_limited" and "秒后再试" in detail["message_zh"] and "try again" in detail["message"]
    # Another user from the same address is not locked out by someone guessing wl_duty.
    assert (await _try(client, "lh_duty", PASSWORD)).status_code == 200


async def test_one_address_sweeping_many_usernames_is_refused(db, clock, runtime, settings):
    from tests.conftest import make_settings
    from warning_service.main import create_app

    runtime.settings = make_settings(db, login_failures_per_address=5, login_failures_per_username=100)
    runtime.login_throttle = LoginThrottle(per_username=100, per_address=5, window_seconds=900,
                                           redis=runtime.redis, prefix=REDIS_KEYSPACE + "login-sweep")
    app = create_app(runtime.settings, runtime=runtime, start_worker=False)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        codes = [(await _try(c, f"user{i}", "x")).status_code for i in range(8)]
    assert codes == [401] * 5 + [429] * 3


async def test_a_right_password_clears_the_username_count(client, tree, settings):
    for i in range(settings.login_failures_per_username - 1):
        await _try(client, "wl_duty", f"wrong-{i}")
    await login(client, "wl_duty")
    assert (await _try(client, "wl_duty", "wrong-again")).status_code == 401


async def test_throttle_falls_back_to_memory_when_redis_is_down(clock):
    class DeadRedis:
        async def mget(self, keys):
            raise ConnectionError("redis down")

        def pipeline(self, transaction=True):
            raise ConnectionError("redis down")

        async def delete(self, key):
            raise ConnectionError("redis down")

    t = LoginThrottle(per_username=2, per_address=100, window_seconds=60, redis=DeadRedis())
    now = clock.now()
    for _ in range(2):
        assert (await t.check(address="a", username="u", now=now)).allowed
        await t.failed(address="a", username="u", now=now)
    verdict = await t.check(address="a", username="u", now=now)
    assert not verdict.allowed and 1 <= verdict.retry_after <= 60
