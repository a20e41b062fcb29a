"""Shared fixtures: a migrated database per backend, truncated before each test; app, client, factories.

Backends: SQLite always; PostgreSQL and Redis when TEST_DATABASE_URL / TEST_REDIS_URL are set. With
WS_REQUIRE_SERVICES=1 (CI) an unreachable PostgreSQL or Redis fails the run instead of skipping it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from channels.console import ConsoleAdapter
from channels.registry import ChannelRegistry
from warning_service.acknowledgment.ratelimit import BadTokenLimiter
from warning_service.auth import service as auth_service
from warning_service.auth.throttle import LoginThrottle
from warning_service.clock import FakeClock
from warning_service.config import Settings
from warning_service.db import Database
from warning_service.delivery.ratelimit import RateLimiter
from warning_service.migrate import upgrade
from warning_service.models import metadata
from warning_service.runtime import Runtime

# Under pytest-xdist each worker process (gw0, gw1, …) runs its own share of the tests against its own
# SQLite file, its own PostgreSQL database (TEST_DATABASE_URL's name + "_gw0") and its own Redis keys
# (REDIS_KEYSPACE); without xdist there is one of each, as before.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
PG_URL = os.environ.get("TEST_DATABASE_URL")
if PG_URL and WORKER:
    PG_URL = f"{PG_URL}_{WORKER}"
REDIS_URL = os.environ.get("TEST_REDIS_URL")
REDIS_KEYSPACE = f"ws-test:{WORKER or 'main'}:"
REQUIRE = os.environ.get("WS_REQUIRE_SERVICES") == "1"
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
if REQUIRE and not (PG_URL and REDIS_URL):
    raise RuntimeError("WS_REQUIRE_SERVICES=1 but TEST_DATABASE_URL or TEST_REDIS_URL is not set")

TEST_DATA = Path(__file__).resolve().parent / "data"
PROJECT_DATA = Path(__file__).resolve().parents[1] / "warning_service" / "data"


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Argon2id at its lowest cost while testing, as Django's tests do with a fast hasher.

    Production's cost (64 MiB, 3 passes) takes 0.1–1 s of CPU per hash or login on this machine and was half
    the suite's time; what the tests prove (hashes are argon2id, salted, verified, wrong passwords refused)
    does not depend on it.
    """
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(auth_service, "_hasher", cheap)
        mp.setattr(auth_service, "_DUMMY_HASH", cheap.hash("dummy-password-for-timing"))
        yield


def _pg_admin_url(url: str) -> tuple[str, str]:
    base, _, name = url.rpartition("/")
    return base + "/postgres", name


async def _recreate_pg_database(url: str) -> None:
    import asyncpg

    admin, name = _pg_admin_url(url.replace("postgresql+asyncpg://", "postgresql://"))
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@pytest.fixture(scope="session", params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[Database]:
    """A database migrated from empty with alembic, once per backend per test run."""
    if request.param == "postgresql":
        assert PG_URL
        await _recreate_pg_database(PG_URL)
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    await asyncio.to_thread(upgrade, url)
    from warning_service.config import async_database_url

    # Each xdist worker holds its own pools: kept small so that two workers stay well inside PostgreSQL's
    # default 100 connections (pool 8 + overflow 20 + the raw pool's 10 each).
    db = Database(async_database_url(url), pool_size=8)
    db.plain_url = url  # type: ignore[attr-defined]
    yield db
    await db.dispose()


TABLES = [t.name for t in reversed(metadata.sorted_tables)]


@pytest.fixture
async def db(database: Database) -> Database:
    """The backend's database, emptied before each test."""
    async with database.engine.begin() as conn:
        if database.is_sqlite:
            for t in TABLES:
                await conn.execute(text(f'DELETE FROM "{t}"'))
        else:
            await conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in TABLES) + " RESTART IDENTITY CASCADE"))
    return database


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def redis_client() -> AsyncIterator[object | None]:
    if not REDIS_URL:
        yield None
        return
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    await _forget_keys(client)
    yield client
    await client.aclose()


async def _forget_keys(client) -> None:
    """Delete this worker's keys, and only those: other workers are using the same Redis database."""
    keys = [k async for k in client.scan_iter(match=REDIS_KEYSPACE + "*", count=1000)]
    if keys:
        await client.delete(*keys)


def isolate_redis_keys(rt: Runtime) -> Runtime:
    """Give a runtime's Redis-backed limiters this worker's key prefix (the app's defaults start "ws:")."""
    rt.ratelimiter = RateLimiter(rt.redis, prefix=REDIS_KEYSPACE + "ratelimit:")
    rt.bad_tokens = BadTokenLimiter(per_minute=rt.settings.ack_bad_token_per_minute, redis=rt.redis,
                                    prefix=REDIS_KEYSPACE + "ack:bad")
    s = rt.settings
    rt.login_throttle = LoginThrottle(per_username=s.login_failures_per_username,
                                      per_address=s.login_failures_per_address,
                                      window_seconds=s.login_window_seconds, redis=rt.redis,
                                      prefix=REDIS_KEYSPACE + "login")
    return rt


def make_settings(db: Database, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test", "secret_key": "test-secret-key-0123456789",
        "database_url": getattr(db, "plain_url", "sqlite://"), "public_base_url": "http://testserver",
        "redis_url": REDIS_URL, "run_worker_in_process": False,
        "retry_base_seconds": 1.0, "retry_max_seconds": 10.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(db: Database) -> Settings:
    return make_settings(db)


@pytest.fixture
def console() -> ConsoleAdapter:
    return ConsoleAdapter(echo=False)


@pytest.fixture
def runtime(db: Database, settings: Settings, clock: FakeClock, redis_client: object | None,
            console: ConsoleAdapter) -> Runtime:
    channels = ChannelRegistry({c: console for c in ("sms", "voice", "email", "broadcast")})
    return isolate_redis_keys(Runtime(settings=settings, db=db, clock=clock, redis=redis_client, channels=channels))


@pytest.fixture
def app(runtime: Runtime, settings: Settings):
    from warning_service.main import create_app

    return create_app(settings, runtime=runtime, start_worker=False)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def tree(db, clock):
    """The small two-county tree with one responsible person per region, and users of 温岭 and 临海.

    Feature folders that need other users override this fixture in their own conftest.
    """
    from tests.factories import build_tree, make_user

    t = await build_tree(db, now=clock.now())
    for username, role, region in (("wl_duty", "duty_officer", "331081"), ("lh_duty", "duty_officer", "331082"),
                                   ("wl_audit", "auditor", "331081")):
        await make_user(db, username=username, role=role, region=region, now=clock.now())
    return t


@pytest.fixture
async def duty(client, tree) -> dict[str, str]:
    """Bearer headers of 温岭's duty officer."""
    from tests.factories import login

    return await login(client, "wl_duty")


@pytest.fixture
async def fake_twilio():
    """A local HTTP server speaking Twilio's REST API (shaped after tests/data/twilio_api_v2010.slice.json)."""
    from tests.delivery.fake_twilio import FakeTwilio, start

    fake = FakeTwilio()
    runner = await start(fake)
    yield fake
    await runner.cleanup()
