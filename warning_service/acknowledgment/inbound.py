"""Answers that arrive by SMS: find the person by phone, decide which notices the reply means,
acknowledge them and say so in Chinese.

Several person records may share one phone (a village head who is also a grid's responsible person); the
reply answers for the human holding the phone, so it covers the open notices of all of them. A bare `1`
answers the most urgent warning they owe an answer to — a real warning before an exercise or test, then the
higher level, then the earliest deadline (then the most recently asked) — every open notice of that message
on this phone; the answer names what was acknowledged and what is still open. A code names one message: a
warning's, or an escalation digest's (one message listing several silent people); the codes of one
person's open messages are unique, so "回复 11" never answers two escalation messages at once.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.acknowledgment.models import InboundEvent
from warning_service.acknowledgment.sms_reply import Reply, parse_reply
from warning_service.config import Settings
from warning_service.db import Database
from warning_service.dialect import RawQuery, upsert
from warning_service.early_warning.models import HAZARD_ZH, LEVEL_ZH, EarlyWarning
from warning_service.logging import get_logger
from warning_service.notice.answer import AckResult, NotAcknowledgeable, answer
from warning_service.notice.models import ANSWERABLE_STATES, Notice, NoticeState
from warning_service.notice.tokens import link_key, make_token
from warning_service.person.phone import PhoneError, normalize_phone

log = get_logger(__name__)
STATUS_PREFIX = {"exercise": "【演练】", "test": "【测试】"}
_E164 = re.compile(r"\+[1-9]\d{6,14}")

UNKNOWN_NUMBER = "您好,本号码未登记为防汛责任人,回复未被记录。如有疑问请联系当地防汛值班室。"
NOTHING_OPEN = "您目前没有待确认的预警,无需回复。"


@dataclass
class SmsOutcome:
    text: str
    acknowledged: list[AckResult] = field(default_factory=list)
    person_ids: list[int] = field(default_factory=list)
    reply: Reply | None = None


@dataclass
class _Open:
    notice_id: int
    warning_id: int
    reply_code: int
    label: str


def warning_label(hazard: str, level: str, status: str = "actual") -> str:
    """'台风红色预警', with 【演练】/【测试】 in front of exercises and tests."""
    return f"{STATUS_PREFIX.get(status, '')}{HAZARD_ZH.get(hazard, hazard)}{LEVEL_ZH.get(level, level)}预警"


def link_for(settings: Settings, notice_id: int) -> str:
    key = link_key(settings.secret_key.get_secret_value())
    return f"{settings.public_base_url}/a/{make_token(notice_id, key=key)}"


def phone_key(raw: str) -> str:
    """The E.164 form people are stored under; Twilio already sends E.164, but be lenient."""
    if _E164.fullmatch(raw):
        return raw
    try:
        return normalize_phone(raw)
    except PhoneError:
        return raw.strip()


# Active persons holding a phone, each with their open notices asking for an answer (if any), most urgent
# first: a "1" typed in answer to a real red typhoon must never acknowledge a later exercise instead.
_HOLDERS = RawQuery(f"""
SELECT p.id, n.id, n.warning_id, COALESCE(d.reply_code, w.reply_code), w.hazard, w.level, w.status,
       d.id IS NOT NULL
FROM person p
LEFT JOIN notice n ON n.person_id = p.id AND n.state IN ({", ".join(f"'{s}'" for s in ANSWERABLE_STATES)})
                  AND n.requires_ack AND n.warning_id IN (SELECT id FROM early_warning WHERE state = 'active')
LEFT JOIN early_warning w ON w.id = n.warning_id
LEFT JOIN escalation_digest d ON d.id = n.digest_id
WHERE p.phone = :phone AND p.active
ORDER BY CASE WHEN w.status = 'actual' THEN 0 ELSE 1 END,
         CASE w.level WHEN 'red' THEN 0 WHEN 'orange' THEN 1 WHEN 'yellow' THEN 2 ELSE 3 END,
         CASE WHEN n.deadline IS NULL THEN 1 ELSE 0 END, n.deadline,
         COALESCE((SELECT max(o.created_at) FROM outbox o WHERE o.notice_id = n.id), n.created_at) DESC,
         n.id DESC
""")


async def _holders(db: Database, phone: str) -> tuple[list[int], list[_Open]]:
    """(person ids, open notices) for a phone, in one query."""
    persons: list[int] = []
    open_: list[_Open] = []
    for pid, nid, wid, code, hazard, level, status, digest in await _HOLDERS.fetch(db, phone=phone):
        if pid not in persons:
            persons.append(pid)
        if nid is not None:
            label = warning_label(hazard, level, status)
            open_.append(_Open(nid, wid, code, f"{label}未确认人员上报" if digest else label))
    return persons, open_


async def _answered(session: AsyncSession, person_ids: list[int], codes: tuple[int, ...] | None = None
                    ) -> list[tuple[int, str]]:
    """(reply code, label) of active warnings these persons already answered, newest first."""
    q = (select(EarlyWarning.reply_code, EarlyWarning.hazard, EarlyWarning.level, EarlyWarning.status)
         .join(Notice, Notice.warning_id == EarlyWarning.id)
         .where(Notice.person_id.in_(person_ids), Notice.state == NoticeState.acknowledged,
                EarlyWarning.state == "active")
         .order_by(Notice.acknowledged_at.desc()))
    if codes is not None:
        q = q.where(EarlyWarning.reply_code.in_(codes))
    seen: OrderedDict[int, str] = OrderedDict()
    for code, hazard, level, status in (await session.execute(q)).all():
        seen.setdefault(code, warning_label(hazard, level, status))
    return list(seen.items())


def _by_message(notices: list[_Open]) -> OrderedDict[int, list[_Open]]:
    """Open notices by the reply code their messages carry: a warning's, or an escalation digest's (one
    message listing several silent people, answered as one)."""
    groups: OrderedDict[int, list[_Open]] = OrderedDict()
    for n in notices:
        groups.setdefault(n.reply_code, []).append(n)
    return groups


def _choose(reply: Reply, open_: list[_Open]) -> tuple[list[_Open], list[int]]:
    """The notices the reply means, and the codes it named that match nothing open."""
    if reply.kind == "all":
        return open_, []
    if reply.kind == "ack":
        groups = _by_message(open_)
        return (next(iter(groups.values())) if groups else []), []
    chosen = [n for n in open_ if n.reply_code in reply.codes]
    return chosen, [c for c in reply.codes if all(n.reply_code != c for n in open_)]


def _how_to_answer(open_: list[_Open], *, still: bool = False) -> str:
    groups = _by_message(open_)
    have = "您还有" if still else "您有"
    if len(groups) == 1:
        n = open_[0]
        return f"{have}1条预警待确认:{n.label},回复 1 确认。" if still else "确认收到请回复 1。"
    listed = "、".join(f"{ns[0].label}回复 {ns[0].reply_code}" for ns in groups.values())
    return f"{have}{len(groups)}条预警待确认:{listed};回复 全部 可一并确认。"


# On PostgreSQL one autocommit statement on the raw pool: in a session (a ping, BEGIN, the insert, COMMIT) this
# check was a third of an SMS reply's CPU in the API (py-spy, bench.ack --only sms).
_FIRST_RECEIPT = ("INSERT INTO inbound_event (sid, kind, received_at) VALUES ($1, $2, $3) "
                  "ON CONFLICT (sid) DO NOTHING")


async def first_receipt(db: Database, *, sid: str, kind: str, now: datetime) -> bool:
    """Record a signed callback's sid; False when it was acted on before (a replay, or Twilio repeating)."""
    if not db.is_sqlite:
        pool = await db.raw_pool()
        async with pool.acquire() as conn:
            status = await conn.execute(_FIRST_RECEIPT, sid[:80], kind, now.astimezone(UTC))
        return status == "INSERT 0 1"
    async with db.session() as session:
        stmt = upsert(session, InboundEvent.__table__, index_elements=["sid"],
                      update_columns=None).values(sid=sid[:80], kind=kind, received_at=now)
        return (await session.execute(stmt)).rowcount == 1


async def forget_receipt(db: Database, *, sid: str) -> None:
    """Handling failed half-way: let Twilio's retry of the same sid through."""
    async with db.session() as session:
        await session.execute(delete(InboundEvent).where(InboundEvent.sid == sid[:80]))


async def handle_sms_reply(db: Database, *, from_number: str, body: str, now: datetime,
                           settings: Settings, sid: str = "") -> SmsOutcome:
    """Acknowledge what the reply means and compose the answer (Chinese, one SMS where possible).

    Each notice is answered in a transaction of its own: answers are independent and idempotent, so a
    failure half-way leaves nothing that a repeated reply would not put right.
    """
    phone = phone_key(from_number)
    if sid and not await first_receipt(db, sid=sid, kind="sms_reply", now=now):
        # A captured reply replayed later must not answer whatever warning is open by then; say nothing back.
        log.warning("sms_reply_replayed", sid=sid, phone=phone)
        return SmsOutcome("")
    try:
        return await _handle(db, phone=phone, body=body, now=now, settings=settings)
    except BaseException:
        if sid:
            await forget_receipt(db, sid=sid)
        raise


async def _handle(db: Database, *, phone: str, body: str, now: datetime, settings: Settings) -> SmsOutcome:
    person_ids, open_ = await _holders(db, phone)
    if not person_ids:
        log.info("sms_reply_unknown_number", phone=phone, body=body[:100])
        return SmsOutcome(UNKNOWN_NUMBER)
    reply = parse_reply(body)
    out = SmsOutcome("", person_ids=person_ids, reply=reply)
    if reply.kind == "unclear":
        log.info("sms_reply_unclear", phone=phone, body=body[:100], open=len(open_))
        out.text = "未能识别您的回复。" + (_how_to_answer(open_) if open_ else NOTHING_OPEN)
        return out
    chosen, unmatched = _choose(reply, open_)
    refused: list[_Open] = []
    for n in chosen:
        try:
            out.acknowledged.append(await answer(db, notice_id=n.notice_id, path="sms_reply", now=now,
                                                 raw_input=body, source=phone))
        except NotAcknowledgeable:
            refused.append(n)  # lifted while we were looking: say nothing was needed
    done_ids = {n.notice_id for n in chosen}
    remaining = [n for n in open_ if n.notice_id not in done_ids]
    out.text = await _compose(db, reply=reply, chosen=chosen, results=out.acknowledged,
                              unmatched=unmatched, remaining=remaining, person_ids=person_ids,
                              settings=settings)
    log.info("sms_reply_handled", phone=phone, kind=reply.kind, codes=list(reply.codes),
             acknowledged=[r.notice_id for r in out.acknowledged if not r.already_acknowledged],
             unmatched=unmatched, refused=[n.notice_id for n in refused])
    return out


async def _compose(db: Database, *, reply: Reply, chosen: list[_Open], results: list[AckResult],
                   unmatched: list[int], remaining: list[_Open], person_ids: list[int],
                   settings: Settings) -> str:
    parts: list[str] = []
    by_notice = {r.notice_id: r for r in results}
    labels: OrderedDict[int, str] = OrderedDict()
    late: set[int] = set()
    for n in chosen:
        r = by_notice.get(n.notice_id)
        if r is None:
            continue
        labels.setdefault(n.reply_code, n.label)
        if r.late:
            late.add(n.reply_code)
    if labels:
        listed = "、".join(label + ("(已超时)" if wid in late else "") for wid, label in labels.items())
        parts.append(f"已确认收到:{listed}。")
    if not chosen:
        async with db.session() as session:
            already = await _answered(session, person_ids, reply.codes if reply.kind == "codes" else None)
        if reply.kind == "codes":
            if already:
                parts.append("、".join(f"{label}" for _, label in already) + "此前已确认,无需重复回复。")
            missing = [c for c in unmatched if c not in {code for code, _ in already}]
            if missing:
                parts.append(f"编号 {'、'.join(map(str, missing))} 没有您待确认的预警。")
        elif already:
            parts.append(f"{already[0][1]}此前已确认,无需重复回复。")
        elif not remaining:
            parts.append(NOTHING_OPEN)
    elif unmatched:
        parts.append(f"编号 {'、'.join(map(str, unmatched))} 没有您待确认的预警。")
    if remaining:
        parts.append(_how_to_answer(remaining, still=True))
    elif len(labels) == 1 and chosen:
        parts.append(f"请立即到岗到位。到岗及转移情况请点此反馈:{link_for(settings, chosen[0].notice_id)}")
    return "".join(parts)


def summary(outcome: SmsOutcome) -> dict[str, Any]:
    return {"acknowledged": [r.notice_id for r in outcome.acknowledged if not r.already_acknowledged],
            "already": [r.notice_id for r in outcome.acknowledged if r.already_acknowledged]}
