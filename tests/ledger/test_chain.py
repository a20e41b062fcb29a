from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from tests.ledger.conftest import KEY, append_and_seal, tamper, verify
from warning_service.ledger import service as ledger
from warning_service.ledger.jobs import seal_tick


async def test_sealed_entries_verify_and_the_head_records_the_end(db, clock):
    await append_and_seal(db, start=clock.now(), n=10)
    result = await verify(db)
    assert result.ok and result.checked == 10 and result.pending == 0
    assert result.head_id == 10
    async with db.session() as s:
        last_hash = (await s.execute(text("SELECT hash FROM ledger WHERE id = 10"))).scalar()
    assert result.head_hash == last_hash


async def test_an_empty_ledger_verifies(db):
    result = await verify(db)
    assert result.ok and result.checked == 0 and result.head_id == 0


async def test_altering_one_entry_is_detected_at_that_entry(db, clock):
    await append_and_seal(db, start=clock.now(), n=12)
    await tamper(db, "UPDATE ledger SET details = :d WHERE id = 7", d='{"i": 6, "名称": "暴雨蓝色预警"}')
    result = await verify(db)
    assert not result.ok and result.first_broken_id == 7
    assert "altered" in result.reason and "篡改" in result.reason_zh


async def test_altering_an_entry_and_its_hash_breaks_the_next_link(db, clock):
    await append_and_seal(db, start=clock.now(), n=12)
    await tamper(db, "UPDATE ledger SET actor = 'user:nobody', hash = :h WHERE id = 5", h="f" * 64)
    result = await verify(db)
    assert not result.ok and result.first_broken_id == 5


async def test_deleting_one_entry_is_detected_at_that_entry(db, clock):
    await append_and_seal(db, start=clock.now(), n=12)
    await tamper(db, "DELETE FROM ledger WHERE id = 9")
    result = await verify(db)
    assert not result.ok and result.first_broken_id == 9
    assert "missing" in result.reason


async def test_cutting_off_the_newest_entries_is_detected(db, clock):
    await append_and_seal(db, start=clock.now(), n=12)
    await tamper(db, "DELETE FROM ledger WHERE id >= 11")
    result = await verify(db)
    assert not result.ok and result.first_broken_id == 11
    assert "cut short" in result.reason and "截断" in result.reason_zh


async def test_removing_the_head_checkpoint_is_detected(db, clock):
    await append_and_seal(db, start=clock.now(), n=5)
    await tamper(db, "DELETE FROM ledger_head")
    result = await verify(db)
    assert not result.ok and result.first_broken_id == 6


async def test_rewinding_the_head_to_match_a_cut_is_caught_by_its_signature(db, clock):
    await append_and_seal(db, start=clock.now(), n=6)
    await tamper(db, "DELETE FROM ledger WHERE id = 6")
    await tamper(db, "UPDATE ledger_head SET entry_id = 5, hash = (SELECT hash FROM ledger WHERE id = 5)")
    result = await verify(db)
    assert not result.ok and "signature" in result.reason


async def test_replaying_an_old_head_is_caught_with_a_head_recorded_earlier(db, clock):
    await append_and_seal(db, start=clock.now(), n=4)
    async with db.session() as s:
        old = (await s.execute(text("SELECT entry_id, hash, mac FROM ledger_head"))).one()
    await append_and_seal(db, start=clock.now(), n=4)
    recorded = await verify(db)
    assert recorded.ok and recorded.head_id == 8
    await tamper(db, "DELETE FROM ledger WHERE id > 4")
    await tamper(db, "UPDATE ledger_head SET entry_id = :i, hash = :h, mac = :m", i=old.entry_id, h=old.hash,
                 m=old.mac)
    assert (await verify(db)).ok  # a perfect rollback fools the database alone …
    result = await verify(db, known=(recorded.head_id, recorded.head_hash))
    assert not result.ok and result.first_broken_id == 5  # … but not a head written down outside it


async def test_sealing_stops_on_a_broken_end_and_keeps_the_decisions_pending(db, clock, runtime):
    await append_and_seal(db, start=clock.now(), n=3)
    await tamper(db, "DELETE FROM ledger WHERE id = 3")
    async with db.session() as s:
        await ledger.append(s, at=clock.now(), actor="system:test", action="ack.recorded",
                            subject_type="notice", subject_id=1)
    assert await seal_tick(runtime) == 0
    result = await verify(db)
    assert not result.ok and result.first_broken_id == 3 and result.pending == 1


async def test_sealing_carries_on_across_batches(db, clock):
    async with db.session() as s:
        await ledger.append_many(s, [{"at": clock.now(), "actor": "system:test", "action": "x.y",
                                      "subject_type": "warning", "subject_id": i} for i in range(25)])
    sealed = []
    for _ in range(10):  # three batches and an empty one; more would be a seal that never finishes
        async with db.session() as s:
            n = await ledger.seal(s, key=KEY, batch_size=10)
        if not n:
            break
        sealed.append(n)
    assert sealed == [10, 10, 5]
    assert (await verify(db)).head_id == 25


async def test_postgresql_refuses_updates_and_deletes_of_ledger_rows(db, clock):
    if db.is_sqlite:
        pytest.skip("the append-only trigger is PostgreSQL's")
    await append_and_seal(db, start=clock.now(), n=2)
    from sqlalchemy.exc import DBAPIError

    for sql in ("UPDATE ledger SET actor = 'x' WHERE id = 1", "DELETE FROM ledger WHERE id = 2"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.engine.begin() as conn:
                await conn.execute(text(sql))
    assert (await verify(db)).ok


async def test_cli_audit_verify_names_the_broken_entry(db, clock):
    await append_and_seal(db, start=clock.now(), n=5)
    env = {**os.environ, "DATABASE_URL": db.plain_url, "SECRET_KEY": "test-secret-key-0123456789",
           "ENVIRONMENT": "test", "REDIS_URL": ""}
    cmd = [sys.executable, "-m", "warning_service.cli", "audit", "verify"]
    ok = await asyncio.to_thread(subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "5 entries verified" in ok.stderr
    await tamper(db, "UPDATE ledger SET subject_id = '2' WHERE id = 4")
    broken = await asyncio.to_thread(subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1
    assert "broken at entry 4" in broken.stderr


async def test_a_tick_seals_the_backlog_in_full_batches_and_leaves_later_arrivals_to_the_next_tick(
        db, clock, runtime, monkeypatch):
    async with db.session() as s:
        await ledger.append_many(s, [{"at": clock.now(), "actor": "system:test", "action": "x.y",
                                      "subject_type": "warning", "subject_id": i} for i in range(25)])
    seal = ledger.seal
    calls = []

    async def seal_while_answers_arrive(session, **kw):
        calls.append(kw["batch_size"])
        n = await seal(session, **kw)
        await session.commit()  # SQLite: the batch's write lock goes before another writer can answer
        async with db.session() as other:  # an answer lands after every batch is taken, as under load
            await ledger.append(other, at=clock.now(), actor="system:test", action="ack.recorded",
                                subject_type="notice", subject_id=len(calls))
        return n

    monkeypatch.setattr(ledger, "seal", seal_while_answers_arrive)
    async with asyncio.timeout(10):
        # 10, 10, then the last 5 and the 2 answers that came after the first two batches: a short batch
        assert await seal_tick(runtime, batch_size=10) == 27
    assert calls == [10, 10, 10]
    assert (await verify(db)).pending == 1  # the answer after the short batch waits for the next tick
