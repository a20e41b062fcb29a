"""A worker process for the kill -9 test: sweeps in batches and stops dead inside one batch's transaction.

Usage: python -m tests.escalation.killable_sweeper DATABASE_URL NOW_ISO BATCH_SIZE PAUSE_IN_BATCH

Prints "COMMITTED <n>" after each committed batch and "PAUSED" once batch PAUSE_IN_BATCH has claimed its
notices and written its messages but not committed; then it waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

from warning_service.config import async_database_url
from warning_service.db import Database
from warning_service.escalation import service
from warning_service.ledger import service as ledger


async def main(url: str, now: datetime, batch_size: int, pause_in: int) -> None:
    db = Database(async_database_url(url))
    real_append = ledger.append_many
    batches = 0

    async def append_many(session, rows):  # the last write of a sweep, just before its commit
        nonlocal batches
        batches += 1
        await real_append(session, rows)
        if batches == pause_in:
            print("PAUSED", flush=True)
            await asyncio.sleep(3600)

    ledger.append_many = append_many  # type: ignore[assignment]
    while True:
        async with db.session() as s:
            r = await service.sweep(s, now=now, batch_size=batch_size)
        print(f"COMMITTED {r.claimed}", flush=True)
        if r.claimed < batch_size:
            break


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], datetime.fromisoformat(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
