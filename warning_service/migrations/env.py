"""Alembic environment: async engines for both SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from warning_service.config import async_database_url, get_settings
from warning_service.db import make_engine
from warning_service.models import metadata

config = context.config


def _url() -> str:
    return async_database_url(config.get_main_option("sqlalchemy.url") or get_settings().database_url)


def _run(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        # SQLite alters most tables by copying them; with foreign keys enforced, dropping the old copy of a
        # table that other rows reference fails. Off for the migration (outside any transaction, where the
        # pragma takes effect); the copies keep their constraints and the next connection enforces them.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = make_engine(_url())
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
