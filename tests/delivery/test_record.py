"""A batch's results written as one statement on the raw pool (PostgreSQL) leave exactly what the session's
statements leave: outbox rows, attempts, notices and ledger entries, outcome by outcome."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from channels.base import Message, SendResult
from tests.delivery.conftest import attempts, issue, notices, outbox
from warning_service.delivery import store
from warning_service.delivery.sending import Item, Outcome
from warning_service.ledger.models import LedgerPending

# One outcome of each kind, in this order: the rows of two warnings get them, one warning's through the
# session, the other's through the one statement.
KINDS = ("sent", "delivered", "retry", "give_up", "handed_back", "sent_then_handed_back")


def _outcomes(rows: list[Any], now: Any) -> list[Outcome]:
    out = []
    for row, kind in zip(rows, KINDS, strict=False):
        item = Item(row, Message(channel=row.channel, address=row.address, body="正文", idempotency_key="k"),
                    None, "twilio", None)  # type: ignore[arg-type]
        done = now + timedelta(seconds=1)
        if kind == "sent":
            out.append(Outcome(item, SendResult.ok("SM-sent", segments=2), now, done))
        elif kind == "delivered":
            out.append(Outcome(item, SendResult.ok("SM-delivered", delivered=True, segments=1), now, done))
        elif kind == "retry":
            out.append(Outcome(item, SendResult.transient("twilio_20429", "too many requests"), now, done))
        elif kind == "give_up":
            out.append(Outcome(item, SendResult.permanent("twilio_21211", "invalid To"), now, done))
        elif kind == "handed_back":
            out.append(Outcome(item, None))
        else:  # the same claim twice in one write: the send's result stands
            out += [Outcome(item, SendResult.ok("SM-twice", segments=3), now, done), Outcome(item, None)]
    return out


async def _state(db: Any, warning_id: int, rows: list[Any]) -> dict[str, Any]:
    index = {r.id: i for i, r in enumerate(rows)}
    by_id = {m.id: m for m in await outbox(db, warning_id=warning_id)}
    fields = ("status", "provider_id", "segments", "sent_at", "delivered_at", "lease_until", "claimed_by",
              "error_code", "error_message", "attempts", "next_attempt_at", "updated_at")
    tried = [[(a.status, a.adapter, a.provider_id, a.error_code, a.error_message, a.retryable, a.started_at,
               a.finished_at) for a in await attempts(db, outbox_id=r.id)] for r in rows]
    states = {n.id: (n.state, n.delivered_at) for n in await notices(db, warning_id)}
    async with db.session() as s:
        ledger = (await s.execute(select(LedgerPending).where(
            LedgerPending.subject_id == str(warning_id), LedgerPending.action.in_(("messages.sent", "messages.failed")))
            .order_by(LedgerPending.id))).scalars().all()

    def plain(details: dict[str, Any]) -> dict[str, Any]:  # outbox ids as the outcome's place in KINDS
        d = dict(details)
        d["outbox_ids"] = [index[i] for i in d["outbox_ids"]]
        if "errors" in d:
            d["errors"] = {str(index[int(k)]): v for k, v in d["errors"].items()}
        return d

    return {"outbox": [tuple(getattr(by_id[r.id], f) for f in fields) for r in rows], "attempts": tried,
            "notices": [states[r.notice_id] for r in rows],
            "ledger": [(e.at, e.actor, e.action, e.subject_type, plain(e.details)) for e in ledger]}


async def test_one_statement_writes_what_the_session_writes(client, duty, db, runtime, clock, monkeypatch):
    if db.is_sqlite:
        pytest.skip("the one statement is PostgreSQL's; SQLite writes in a session")
    monkeypatch.setattr(store, "backoff_seconds", lambda *a, **k: 30.0)  # no jitter: both retries alike
    first = await issue(client, duty, targets=["331081001"])
    second = await issue(client, duty, targets=["331081002"])
    now = clock.now()
    async with db.session() as s:
        claimed = await store.claim(s, now=now, lease_until=now + timedelta(seconds=120), batch_size=1000,
                                      worker="worker-1")
    # Both warnings' rows alike: their first four SMS and first two e-mails (the smaller town has four people).
    rows = {w: [r for r in claimed if r.warning_id == w and r.channel == "sms"][:4]
            + [r for r in claimed if r.warning_id == w and r.channel == "email"][:2] for w in (first, second)}
    assert all(len(rs) == len(KINDS) for rs in rows.values())
    settings = runtime.settings

    async with db.session() as s:
        by_session = await store.record(s, _outcomes(rows[first], now), now=now, settings=settings)
    by_statement = await store.write(db, _outcomes(rows[second], now), now=now, settings=settings)

    assert by_statement == by_session
    session_state, statement_state = await _state(db, first, rows[first]), await _state(db, second, rows[second])
    assert statement_state == session_state
    assert [s[0] for s in statement_state["outbox"]] == ["sent", "delivered", "queued", "failed", "queued", "sent"]
    assert statement_state["notices"][1][0] == "delivered"
