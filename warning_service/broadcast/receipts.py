"""Play receipts pushed by the broadcast platform: signature, the platform's words, and recording them once.

The platform signs each push with the shared secret (channels/broadcast_signing.py); an unsigned, badly signed
or stale push is refused with 403 and changes nothing. A push carries one report or a list of them (a bare
array, or an object with `receipts`); field names and event words are mapped from the platform's own by two
settings, so a county platform that says `playStatus: "DONE"` needs no code. Every report is kept once by its
id: the same report pushed again is ignored, and a play only moves forward (started → finished | failed).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.broadcast_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, check
from warning_service.broadcast.models import BroadcastPlay, BroadcastReceipt, PlayStatus, Receipt, Terminal
from warning_service.config import BROADCAST_RECEIPT_FIELDS, Settings
from warning_service.delivery.models import OutboxMessage
from warning_service.delivery.service import record_receipt
from warning_service.dialect import upsert
from warning_service.errors import Forbidden, Invalid
from warning_service.logging import get_logger

log = get_logger(__name__)
MAX_ITEMS = 5000
FIELDS = BROADCAST_RECEIPT_FIELDS
# A failure whose reason says the terminal is off line marks it so in the registry (the page shows it).
OFFLINE = re.compile(r"offline|off_line|离线|不在线", re.IGNORECASE)


async def verified_body(request: Request) -> bytes:
    """FastAPI dependency: the raw body, once the platform's signature over it holds."""
    settings: Settings = request.app.state.settings
    if settings.broadcast_secret is None:
        log.warning("broadcast_receipt_refused", reason="no secret configured")
        raise Forbidden("broadcast receipts are disabled: BROADCAST_SECRET is not set",
                        "未配置 BROADCAST_SECRET,拒绝广播平台回执")
    body = await request.body()
    now = request.app.state.clock.now().timestamp()
    why = check(settings.broadcast_secret.get_secret_value(), timestamp=request.headers.get(TIMESTAMP_HEADER),
                given=request.headers.get(SIGNATURE_HEADER), body=body, now=now,
                max_skew=settings.broadcast_signature_max_skew_seconds)
    if why is not None:
        log.warning("broadcast_receipt_refused", reason=why)
        raise Forbidden("invalid broadcast platform signature", "广播平台签名无效")
    return body


def parse(settings: Settings, body: bytes) -> list[Receipt]:
    """The push in our words; one malformed report refuses the whole push (the platform sends it again)."""
    try:
        data = TypeAdapter(Any).validate_json(body)
    except ValidationError:
        raise Invalid("the receipt body is not JSON", "回执内容不是 JSON", field="body") from None
    if isinstance(data, dict) and isinstance(data.get("receipts"), list):
        data = data["receipts"]
    items = data if isinstance(data, list) else [data]
    if len(items) > MAX_ITEMS or not all(isinstance(i, dict) for i in items):
        raise Invalid("receipts must be JSON objects", "回执须为 JSON 对象或对象数组", field="body")
    names = {**{f: f for f in FIELDS}, **settings.broadcast_receipt_field_names()}
    words = settings.broadcast_receipt_event_words()
    ours = []
    for item in items:
        got = {f: item.get(names[f]) for f in FIELDS}
        got["event"] = words.get(str(got["event"]), got["event"])
        for f in ("id", "task", "terminal"):
            if isinstance(got[f], int):
                got[f] = str(got[f])
        ours.append({k: v for k, v in got.items() if v is not None})
    try:
        return TypeAdapter(list[Receipt]).validate_python(ours)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Invalid(f"receipt {where}: {first['msg']}", f"回执第 {where} 项无效:{first['msg']}",
                      field=where) from None


def _larger(column: Any, value: int) -> Any:
    return case((column < value, value), else_=column)


async def apply(session: AsyncSession, *, items: list[Receipt], now: datetime) -> list[str]:
    """Record each report once; returns what happened to each (recorded / duplicate / unknown_task)."""
    out = []
    for r in items:
        at = (r.at.astimezone(UTC) if r.at and r.at.tzinfo else r.at.replace(tzinfo=UTC) if r.at else now)
        message = (await session.execute(select(OutboxMessage.id, OutboxMessage.warning_id, OutboxMessage.region_code,
                                                OutboxMessage.provider_id).where(
            OutboxMessage.idempotency_key == r.task, OutboxMessage.channel == "broadcast"))).first()
        kept = (await session.execute(upsert(session, BroadcastReceipt.__table__, index_elements=["receipt_id"])
                                      .values(receipt_id=r.id, outbox_id=message.id if message else None,
                                              terminal_ref=r.terminal, event=r.event.value, repeats=r.repeats,
                                              error_code=r.error, reported_at=at, received_at=now)
                                      .returning(BroadcastReceipt.id))).first()
        if kept is None:
            out.append("duplicate")
            continue
        if message is None:
            log.info("broadcast_receipt_unknown_task", task=r.task, terminal=r.terminal)
            out.append("unknown_task")
            continue
        await _fold(session, r=r, message=message, at=at, now=now)
        await _terminal_seen(session, r=r, at=at)
        if r.event == PlayStatus.finished:
            # One loudspeaker of the village played it to the end: the message reached the village.
            await record_receipt(session, provider_id=message.provider_id or r.task[:64], status="delivered",
                                 raw="finished", error_code=None, now=now, outbox_hint=str(message.id))
        out.append("recorded")
    return out


async def _fold(session: AsyncSession, *, r: Receipt, message: Any, at: datetime, now: datetime) -> None:
    """Fold one report into its (message, terminal) play; only forward, repeats only up."""
    repeats = r.repeats or 0
    done = r.event != PlayStatus.started
    first = (await session.execute(upsert(session, BroadcastPlay.__table__,
                                          index_elements=["outbox_id", "terminal_ref"])
                                   .values(outbox_id=message.id, warning_id=message.warning_id,
                                           village_code=message.region_code or "", terminal_ref=r.terminal,
                                           status=r.event.value, repeats=repeats,
                                           error_code=r.error if r.event == PlayStatus.failed else None,
                                           started_at=at if not done or r.event == PlayStatus.finished else None,
                                           finished_at=at if done else None, updated_at=now)
                                   .returning(BroadcastPlay.id))).first()
    if first is not None:
        return
    match = (BroadcastPlay.outbox_id == message.id, BroadcastPlay.terminal_ref == r.terminal)
    if not done:
        await session.execute(update(BroadcastPlay).where(*match, BroadcastPlay.status == PlayStatus.started.value)
                              .values(repeats=_larger(BroadcastPlay.repeats, repeats),
                                      started_at=func.coalesce(BroadcastPlay.started_at, at), updated_at=now))
        return
    await session.execute(update(BroadcastPlay).where(*match, BroadcastPlay.status == PlayStatus.started.value)
                          .values(status=r.event.value, repeats=_larger(BroadcastPlay.repeats, repeats),
                                  error_code=r.error if r.event == PlayStatus.failed else None,
                                  finished_at=at, updated_at=now))


async def _terminal_seen(session: AsyncSession, *, r: Receipt, at: datetime) -> None:
    """A terminal that played is on line; one the platform could not reach because it is off line is not."""
    t = Terminal.__table__
    if r.event == PlayStatus.failed:
        if r.error and OFFLINE.search(r.error):
            await session.execute(update(t).where(t.c.platform_id == r.terminal).values(online=False))
        return
    await session.execute(update(t).where(t.c.platform_id == r.terminal).values(
        online=True, last_seen_at=case((t.c.last_seen_at.is_(None), at), (t.c.last_seen_at < at, at),
                                       else_=t.c.last_seen_at)))
