from __future__ import annotations

import asyncio

from sqlalchemy import inspect

from warning_service.migrate import downgrade, upgrade
from warning_service.models import metadata


async def test_migrations_go_down_to_empty_and_up_again(database):
    url = database.plain_url
    await asyncio.to_thread(downgrade, url, "base")
    async with database.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert tables <= {"alembic_version"}
    await asyncio.to_thread(upgrade, url)
    async with database.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert set(metadata.tables) <= tables
