from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from tests.ledger.conftest import KEY
from warning_service.config import async_database_url
from warning_service.db import Database
from warning_service.ledger import service as ledger
from warning_service.ledger.models import LedgerEntry, LedgerPending
from warning_service.migrate import upgrade


async def test_upgrading_a_ledger_that_has_entries_anchors_its_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    await asyncio.to_thread(upgrade, url, "0002")
    db = Database(async_database_url(url))
    try:
        t0 = datetime(2026, 6, 1, tzinfo=UTC)
        prev, rows = ledger.GENESIS, []
        for i in range(1, 4):
            at = t0 + timedelta(minutes=i)
            h = ledger.entry_hash(KEY, prev_hash=prev, entry_id=i, at=at, actor="cli", action="user.created",
                                  subject_type="user", subject_id=str(i), details={"n": i})
            rows.append({"id": i, "at": at, "actor": "cli", "action": "user.created", "subject_type": "user",
                         "subject_id": str(i), "details": {"n": i}, "prev_hash": prev, "hash": h})
            prev = h
        async with db.session() as s:
            await s.execute(insert(LedgerEntry), rows)
        # The migration signs the head with the deployment's own key, read from its settings.
        env = {**os.environ, "SECRET_KEY": "test-secret-key-0123456789", "ENVIRONMENT": "test",
               "DATABASE_URL": url}
        code = f"from warning_service.migrate import upgrade; upgrade({url!r})"
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", code], env=env,
                                       capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        async with db.session() as s:
            result = await ledger.verify(s, key=KEY)
        assert result.ok and result.head_id == 3 and result.head_hash == prev
        async with db.session() as s:
            await s.execute(insert(LedgerPending).values(at=t0, actor="cli", action="x.y", subject_type="user",
                                                         subject_id="9", details={}))
        async with db.session() as s:
            assert await ledger.seal(s, key=KEY) == 1
        async with db.session() as s:
            assert (await ledger.verify(s, key=KEY)).head_id == 4
    finally:
        await db.dispose()
