"""A worker's beat renews only its own leases, and only those past half their time (one range scan instead of
every held id each second; renewing every row every beat deadlocked with the group commit under load)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from warning_service.delivery import store
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.models import EarlyWarning


async def test_a_beat_renews_only_this_workers_leases_that_end_within_half_a_lease(db, clock) -> None:
    now = clock.now()
    async with db.session() as s:
        w = EarlyWarning(identifier="hb-1", sender="温岭市防指", sender_code="33108100000000", hazard="typhoon",
                         level="red", status="actual", title="台风红色预警", description="测试", instruction="到岗",
                         issued_at=now, effective_at=now, targets=["331081"], area_desc="温岭市", policy={},
                         reply_code=1, updated_at=now)
        s.add(w)
        await s.flush()
        rows = {"mine_old": ("me", 5), "mine_fresh": ("me", 25), "theirs_old": ("other", 5)}
        for key, (worker, left) in rows.items():
            s.add(OutboxMessage(warning_id=w.id, kind="alert", channel="sms", address="+8613900000001",
                                status="sending", attempts=1, next_attempt_at=now, claimed_by=worker,
                                lease_until=now + timedelta(seconds=left), idempotency_key=key, created_at=now,
                                updated_at=now))
    async with db.session() as s:
        renewed = await store.heartbeat(s, worker="me", now=now, lease_until=now + timedelta(seconds=30),
                                        renew_before=now + timedelta(seconds=15))
    assert renewed == 1
    async with db.session() as s:
        leases = dict((await s.execute(select(OutboxMessage.idempotency_key, OutboxMessage.lease_until))).all())
    left = {k: round((v.replace(tzinfo=now.tzinfo) - now).total_seconds()) for k, v in leases.items()}
    assert left == {"mine_old": 30, "mine_fresh": 25, "theirs_old": 5}
