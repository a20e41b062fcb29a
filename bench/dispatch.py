"""Dispatch throughput for a Zhejiang-wide red warning through a zero-latency fake adapter, on PostgreSQL.

    python -m bench.dispatch [--database-url postgresql://postgres@127.0.0.1:5432/ws_bench_dispatch]
                             [--batch-size 2000] [--redis redis://127.0.0.1:6379/1] [--fresh] [--profile]

Issues (once) a red typhoon warning for the whole province (~130,000 SMS, e-mail and loudspeaker messages),
then re-queues its outbox and times the dispatcher draining it: claim, stale check, render from templates,
paced send (rate limiter in the path), attempt rows, status updates, notices, ledger. Prints messages/s, the
batch size and the share of wall time spent inside SQL statements. Target: ≥ 8,000 messages/s.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import event, func, select, text

from bench.zhejiang import ensure_zhejiang
from channels.base import Message
from channels.fake import FakeAdapter
from channels.registry import ChannelRegistry
from warning_service.actor import Actor
from warning_service.clock import Clock, utcnow
from warning_service.config import Settings, async_database_url
from warning_service.db import Database
from warning_service.delivery.dispatcher import dispatch_tick
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.models import EarlyWarning, Hazard, Level, WarningCreate
from warning_service.early_warning.policy import load_policy
from warning_service.early_warning.service import issue_warning
from warning_service.runtime import Runtime

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/ws_bench_dispatch"
MARK = "bench.dispatch 浙江全省台风红色预警"
TARGET = 8_000
PLAIN_BODY = "【浙江省防汛防台抗旱指挥部】浙江省发布台风红色预警,请立即到岗。回复 1 确认。"


async def bench_warning(db: Database, settings: Settings) -> int:
    """The province-wide warning this bench drains (issued on first run)."""
    async with db.session() as s:
        wid = (await s.execute(select(EarlyWarning.id).where(EarlyWarning.title == MARK))).scalar()
        if wid is not None:
            return wid
        actor = Actor(name="user:zj_duty", scope_path="/33/", scope_code="33")
        data = WarningCreate(hazard=Hazard.typhoon, level=Level.red, targets=["33"], title=MARK,
                             description="台风“烟花”预计今夜在浙江沿海登陆,最大风力14级,全省大部有暴雨到大暴雨。")
        t0 = time.perf_counter()
        res = await issue_warning(s, data=data, actor=actor, policy=load_policy(None), settings=settings,
                                  now=utcnow())
    print(f"issued warning {res.warning.id}: {res.recipient_count} recipients, {res.messages_queued} messages "
          f"in {time.perf_counter() - t0:.1f} s")
    return res.warning.id  # type: ignore[return-value]


async def requeue(db: Database, warning_id: int) -> int:
    """Put every message of the warning back in the queue, as if just issued."""
    async with db.session() as s:
        await s.execute(text("DELETE FROM delivery_attempt WHERE outbox_id IN "
                             "(SELECT id FROM outbox WHERE warning_id = :w)"), {"w": warning_id})
        n = (await s.execute(text(
            "UPDATE outbox SET status = 'queued', attempts = 0, lease_until = NULL, provider_id = NULL, "
            "error_code = NULL, error_message = NULL, segments = NULL, sent_at = NULL, delivered_at = NULL, "
            "next_attempt_at = now() - interval '1 second' WHERE warning_id = :w"), {"w": warning_id})).rowcount
        await s.execute(text("UPDATE notice SET state = 'pending', delivered_at = NULL "
                             "WHERE warning_id = :w AND state = 'delivered'"), {"w": warning_id})
        await s.execute(text("UPDATE early_warning SET state = 'active', expires_at = NULL WHERE id = :w"),
                        {"w": warning_id})
    raw = await db.engine.raw_connection()
    try:
        for table in ("outbox", "notice", "delivery_attempt"):
            await raw.driver_connection.execute(f"VACUUM ANALYZE {table}")
    finally:
        raw.close()
    return n


class SqlTimer:
    """Wall time spent inside SQL statements (driver round trips included), by statement kind."""

    def __init__(self, db: Database) -> None:
        self.total = 0.0
        self.by_kind: dict[str, float] = defaultdict(float)
        self.count = 0
        engine = db.engine.sync_engine

        @event.listens_for(engine, "before_cursor_execute")
        def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            conn.info.setdefault("t0", []).append(time.perf_counter())

        @event.listens_for(engine, "after_cursor_execute")
        def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            dt = time.perf_counter() - conn.info["t0"].pop()
            self.total += dt
            self.count += 1
            self.by_kind[" ".join(statement.split()[:3])[:40]] += dt


async def plain_render(session: Any, *, rows: Any, settings: Settings, now: Any = None) -> dict[int, Message]:
    """A renderer with no templates, to show what the dispatcher itself costs (--plain)."""
    return {r.id: Message(channel=r.channel, address=r.address, body=PLAIN_BODY, subject="台风红色预警",
                          idempotency_key=r.idempotency_key) for r in rows}


async def run(url: str, batch_size: int, redis_url: str | None, fresh: bool, profile: bool,
              plain: bool = False) -> float:
    from warning_service.logging import configure_logging

    configure_logging("WARNING")
    await ensure_zhejiang(url, fresh=fresh)
    settings = Settings(_env_file=None, database_url=url, redis_url=redis_url,  # type: ignore[call-arg]
                        environment="development", channel_rate_limits="fake=1000000",
                        dispatch_batch_size=batch_size)
    db = Database(async_database_url(url), pool_size=10)
    redis = None
    if redis_url:
        import redis.asyncio as aioredis

        redis = aioredis.from_url(redis_url)
    fake = FakeAdapter(delivered=False)
    rt = Runtime(settings=settings, db=db, clock=Clock(), redis=redis,
                 channels=ChannelRegistry({c: fake for c in ("sms", "voice", "email", "broadcast")}))
    if plain:
        rt.render_outbox = plain_render
    try:
        wid = await bench_warning(db, settings)
        n = await requeue(db, wid)
        async with db.session() as s:
            by_channel = dict((await s.execute(select(OutboxMessage.channel, func.count()).where(
                OutboxMessage.warning_id == wid).group_by(OutboxMessage.channel))).all())
        print(f"outbox: {n} messages {by_channel}; batch size {batch_size}; "
              f"rate limiter: {'Redis' if redis else 'in-process'}; "
              f"rendering: {'none (--plain)' if plain else 'templates'}")
        timer = SqlTimer(db)
        profiler = None
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="enabled")
            profiler.start()
        t0 = time.perf_counter()
        done = 0
        for _ in range(n + 1):  # the worker's job, tick after tick, until the queue is empty (each sends ≥ 1)
            got = await dispatch_tick(rt)
            done += got
            if got == 0:
                break
        else:
            raise SystemExit(f"the queue of {n} messages was not empty after {n + 1} ticks")
        elapsed = time.perf_counter() - t0
        if profiler:
            profiler.stop()
            print(profiler.output_text(unicode=True, color=False, show_all=False))
        async with db.session() as s:
            left = (await s.execute(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.warning_id == wid, OutboxMessage.status != "sent"))).scalar_one()
        rate = done / elapsed
        print(f"dispatched {done} messages in {elapsed:.2f} s = {rate:,.0f} messages/s "
              f"(target ≥ {TARGET:,}: {'met' if rate >= TARGET else 'NOT met'}); batch size {batch_size}")
        print(f"SQL time share: {timer.total / elapsed:.0%} ({timer.count} statements, {timer.total:.2f} s)")
        for kind, t in sorted(timer.by_kind.items(), key=lambda kv: -kv[1])[:8]:
            print(f"  {t:6.2f} s  {kind}")
        print(f"adapter sends: {fake.calls}; messages not 'sent' afterwards: {left}")
        return rate
    finally:
        if redis is not None:
            await redis.aclose()
        await db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=DEFAULT_URL)
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--redis", default=None, help="share the rate limiter through this Redis")
    ap.add_argument("--fresh", action="store_true", help="drop and recreate the database first")
    ap.add_argument("--profile", action="store_true", help="print a pyinstrument profile of the drain")
    ap.add_argument("--plain", action="store_true", help="skip the templates: the dispatcher's own cost")
    args = ap.parse_args()
    asyncio.run(run(args.database_url, args.batch_size, args.redis, args.fresh, args.profile, args.plain))


if __name__ == "__main__":
    main()
