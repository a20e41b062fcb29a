"""Shared fixtures: a migrated database per backend, truncated before each test; app, client, factories.

Backends: SQLite always; PostgreSQL and Redis when TEST_DATABASE_URL / TEST_REDIS_URL are set. With
WS_REQUIRE_SERVICES=1 (CI) an unreachable PostgreSQL or Redis fails the run instead of skipping it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from channels.console import ConsoleAdapter
from channels.registry import ChannelRegistry
from warning_service.clock import FakeClock
from warning_service.config import Settings
from warning_service.db import Database
from warning_service.migrate import upgrade
from warning_service.models import metadata
from warning_service.runtime import Runtime

PG_URL = os.environ.get("TEST_DATABASE_URL")
REDIS_URL = os.environ.get("TEST_REDIS_URL")
REQUIRE = os.environ.get("WS_REQUIRE_SERVICES") == "1"
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
if REQUIRE and not (PG_URL and REDIS_URL):
    raise RuntimeError("WS_REQUIRE_SERVICES=1 but TEST_DATABASE_URL or TEST_REDIS_URL is not set")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PROJECT_DATA = Path(__file__).resolve().parents[1] / "warning_service" / "data"


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

    db = Database(async_database_url(url), pool_size=20)
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
    await client.flushdb()
    yield client
    await client.aclose()


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
    return Runtime(settings=settings, db=db, clock=clock, redis=redis_client, channels=channels)


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
    """A local HTTP server speaking Twilio's REST API (shaped after shared/data/twilio_api_v2010.json)."""
    from tests.delivery.fake_twilio import FakeTwilio, start

    fake = FakeTwilio()
    runner = await start(fake)
    yield fake
    await runner.cleanup()
