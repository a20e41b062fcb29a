"""Ledger fixtures: sealed entries to tamper with, users of each role."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from tests.factories import build_tree, make_user
from warning_service.db import Database
from warning_service.ledger import service as ledger

KEY = ledger.ledger_key("test-secret-key-0123456789")


async def append_and_seal(db: Database, *, start, n: int, action: str = "warning.issued",
                          subject_type: str = "warning", subject_id: int | str = 1,
                          actor: str = "user:duty1") -> None:
    async with db.session() as s:
        await ledger.append_many(s, [
            {"at": start + timedelta(seconds=i), "actor": actor, "action": action,
             "subject_type": subject_type, "subject_id": subject_id,
             "details": {"i": i, "名称": "台风红色预警"}} for i in range(n)])
    async with db.session() as s:
        await ledger.seal(s, key=KEY)


async def tamper(db: Database, sql: str, **params: object) -> None:
    """Change the ledger behind the application's back, as a database superuser could.

    PostgreSQL refuses UPDATE/DELETE on the ledger by trigger; replication role skips triggers for this
    one transaction, as an attacker with superuser rights would.
    """
    async with db.engine.begin() as conn:
        if not db.is_sqlite:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(text(sql), params)


async def verify(db: Database, **kw: object) -> ledger.VerifyResult:
    async with db.session() as s:
        return await ledger.verify(s, key=KEY, page=kw.pop("page", 4), **kw)  # small pages cross boundaries


@pytest.fixture
async def users(db, clock):
    tree = await build_tree(db, now=clock.now(), grids_per_village=1)
    await make_user(db, username="wl_duty", role="duty_officer", region="331081", now=clock.now())
    await make_user(db, username="wl_audit", role="auditor", region="331081", now=clock.now())
    await make_user(db, username="zj_audit", role="auditor", region="33", now=clock.now())
    return tree
