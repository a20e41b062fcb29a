"""Append decisions, seal them into the HMAC chain, and verify the chain."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.auth.models import User
from warning_service.delivery.models import OutboxMessage
from warning_service.dialect import is_postgresql, name, upsert
from warning_service.drills.models import Drill
from warning_service.early_warning.models import WarningTarget
from warning_service.ledger.models import LedgerEntry, LedgerHead, LedgerPending
from warning_service.logging import get_logger
from warning_service.notice.models import Notice
from warning_service.person.models import Person
from warning_service.region.models import Region
from warning_service.region.scope import Scope

log = get_logger(__name__)

GENESIS = "0" * 64
_SEAL_LOCK = 72_500_001


async def append(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str | int,
    details: dict[str, Any] | None = None,
) -> None:
    """Record one decision in the caller's transaction; it is chained when sealed."""
    await session.execute(
        insert(LedgerPending).values(
            at=at, actor=actor, action=action, subject_type=subject_type, subject_id=str(subject_id),
            details=details or {},
        )
    )


async def append_many(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Record many decisions at once (dicts with the keys of `append`)."""
    if rows:
        await session.execute(
            insert(LedgerPending),
            [{**r, "subject_id": str(r["subject_id"]), "details": r.get("details") or {}} for r in rows],
        )


def entry_hash(key: bytes, *, prev_hash: str, entry_id: int, at: datetime, actor: str, action: str,
               subject_type: str, subject_id: str, details: dict[str, Any]) -> str:
    """HMAC over the entry and its predecessor's hash: altering, removing or reordering a row shows."""
    payload = json.dumps(
        [prev_hash, entry_id, at.isoformat(timespec="microseconds"), actor, action, subject_type, subject_id,
         details],
        ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str,
    )
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def ledger_key(secret: str) -> bytes:
    return hashlib.sha256(b"warning-service ledger v1:" + secret.encode()).digest()


def head_mac(key: bytes, *, entry_id: int, hash_: str) -> str:
    """Signature of the head checkpoint: only the sealer, holding the key, can move it."""
    payload = json.dumps(["head", entry_id, hash_], separators=(",", ":"))
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


class LedgerBroken(Exception):
    """The sealed chain does not end where its head checkpoint says; sealing stops until someone looks."""


def _end_problem(key: bytes, head: Any, last: Any) -> str | None:
    """Why the newest entry and the head checkpoint disagree, or None when they agree."""
    if head is None:
        return None if last is None else "the head checkpoint is missing"
    if not hmac.compare_digest(head.mac, head_mac(key, entry_id=head.entry_id, hash_=head.hash)):
        return "the head checkpoint's signature does not match"
    if last is None or last.id != head.entry_id or last.hash != head.hash:
        return (f"the ledger ends at entry {last.id if last else 0} but its head checkpoint records "
                f"entry {head.entry_id}")
    return None


async def _read_head(session: AsyncSession) -> Any:
    return (await session.execute(
        select(LedgerHead.entry_id, LedgerHead.hash, LedgerHead.mac).where(LedgerHead.id == 1))).first()


async def seal(session: AsyncSession, *, key: bytes, batch_size: int = 5000) -> int:
    """Move up to `batch_size` pending decisions into the chained ledger; returns how many.

    Raises LedgerBroken (and rolls the batch back into pending, losing nothing) when the chain's end
    does not match its signed head: chaining on would overwrite the evidence.
    """
    if is_postgresql(session):
        got = (await session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"),
                                     {"k": _SEAL_LOCK})).scalar()
        if not got:
            return 0  # another sealer is at work; order is kept by letting it finish
    # Deleting first takes SQLite's write lock before anything is read, so two sealers cannot interleave.
    ids_q = select(LedgerPending.id).order_by(LedgerPending.id).limit(batch_size).scalar_subquery()
    rows = (
        await session.execute(
            delete(LedgerPending).where(LedgerPending.id.in_(ids_q)).returning(
                LedgerPending.id, LedgerPending.at, LedgerPending.actor, LedgerPending.action,
                LedgerPending.subject_type, LedgerPending.subject_id, LedgerPending.details,
            )
        )
    ).all()
    if not rows:
        return 0
    rows = sorted(rows, key=lambda r: r.id)
    last = (await session.execute(
        select(LedgerEntry.id, LedgerEntry.hash).order_by(LedgerEntry.id.desc()).limit(1))).first()
    problem = _end_problem(key, await _read_head(session), last)
    if problem:
        raise LedgerBroken(problem)
    prev_hash, next_id = (last.hash, last.id + 1) if last else (GENESIS, 1)
    out = []
    for r in rows:
        h = entry_hash(key, prev_hash=prev_hash, entry_id=next_id, at=r.at, actor=r.actor, action=r.action,
                       subject_type=r.subject_type, subject_id=r.subject_id, details=r.details)
        out.append({"id": next_id, "at": r.at, "actor": r.actor, "action": r.action,
                    "subject_type": r.subject_type, "subject_id": r.subject_id, "details": r.details,
                    "prev_hash": prev_hash, "hash": h})
        prev_hash, next_id = h, next_id + 1
    for i in range(0, len(out), 1000):
        await session.execute(insert(LedgerEntry), out[i:i + 1000])
    head_id = next_id - 1
    stmt = upsert(session, LedgerHead.__table__, index_elements=["id"],
                  update_columns=["entry_id", "hash", "mac"])
    await session.execute(stmt, [{"id": 1, "entry_id": head_id, "hash": prev_hash,
                                  "mac": head_mac(key, entry_id=head_id, hash_=prev_hash)}])
    # The head goes to the logs too: a copy outside the database that a wholesale rewrite cannot reach.
    log.info("ledger_sealed", entries=len(out), head_id=head_id, head_hash=prev_hash)
    return len(out)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    pending: int
    first_broken_id: int | None = None
    reason: str | None = None
    reason_zh: str | None = None
    head_id: int = 0  # the signed checkpoint: write it down and pass it back as `known` later
    head_hash: str | None = None
    oldest_pending_at: datetime | None = None


def _broken(base: dict[str, Any], entry_id: int, reason: str, reason_zh: str) -> VerifyResult:
    return VerifyResult(ok=False, first_broken_id=entry_id, reason=reason, reason_zh=reason_zh, **base)


async def verify(session: AsyncSession, *, key: bytes, page: int = 5000,
                 known: tuple[int, str] | None = None) -> VerifyResult:
    """Walk the chain in order; name the first row whose content or link does not hold.

    Also checks the end: entries cut off after the head checkpoint, entries added beyond it, and — when
    `known` (an entry id and hash recorded earlier, e.g. from a previous verify) is given — a head
    checkpoint rolled back together with the entries after it.
    """
    head = await _read_head(session)
    pending, oldest = (await session.execute(
        select(func.count(), func.min(LedgerPending.at)).select_from(LedgerPending))).one()
    base: dict[str, Any] = {"pending": pending, "oldest_pending_at": oldest, "checked": 0,
                            "head_id": head.entry_id if head else 0, "head_hash": head.hash if head else None}
    cols = (LedgerEntry.id, LedgerEntry.at, LedgerEntry.actor, LedgerEntry.action, LedgerEntry.subject_type,
            LedgerEntry.subject_id, LedgerEntry.details, LedgerEntry.prev_hash, LedgerEntry.hash)
    prev_hash, expected_id = GENESIS, 1
    while True:
        rows = (await session.execute(
            select(*cols).where(LedgerEntry.id >= expected_id).order_by(LedgerEntry.id).limit(page))).all()
        for e in rows:
            if e.id != expected_id:
                return _broken(base, expected_id, f"entry {expected_id} is missing (next present is {e.id})",
                               f"第 {expected_id} 条记录缺失(下一条为 {e.id})")
            if e.prev_hash != prev_hash:
                return _broken(base, e.id, f"entry {e.id} does not link to the entry before it",
                               f"第 {e.id} 条记录与前一条的链接断开")
            h = entry_hash(key, prev_hash=e.prev_hash, entry_id=e.id, at=e.at, actor=e.actor, action=e.action,
                           subject_type=e.subject_type, subject_id=e.subject_id, details=e.details)
            if not hmac.compare_digest(h, e.hash):
                return _broken(base, e.id, f"entry {e.id} was altered (its content does not match its hash)",
                               f"第 {e.id} 条记录被篡改(内容与哈希不符)")
            if known and e.id == known[0] and e.hash != known[1]:
                return _broken(base, e.id, f"entry {e.id} differs from the hash recorded for it earlier",
                               f"第 {e.id} 条记录与此前记录的哈希不符")
            prev_hash, expected_id = e.hash, e.id + 1
            base["checked"] += 1
        if len(rows) < page:
            break
    last_id = expected_id - 1
    return await _check_end(session, key, base, head, last_id, prev_hash, known)


async def _check_end(session: AsyncSession, key: bytes, base: dict[str, Any], head: Any, last_id: int,
                     last_hash: str, known: tuple[int, str] | None) -> VerifyResult:
    cut = last_id + 1
    if known and known[0] > last_id:
        return _broken(base, cut, f"entries from {cut} on are missing: entry {known[0]} was recorded earlier",
                       f"第 {cut} 条起的记录缺失(此前已记录到第 {known[0]} 条)")
    if head is None:
        if last_id == 0:
            return VerifyResult(ok=True, **base)
        return _broken(base, cut, "the head checkpoint is missing: the newest entries may have been removed",
                       "链尾校验点缺失:最新的记录可能已被删除")
    if not hmac.compare_digest(head.mac, head_mac(key, entry_id=head.entry_id, hash_=head.hash)):
        return _broken(base, cut, "the head checkpoint was altered (its signature does not match)",
                       "链尾校验点被篡改(签名不符)")
    if last_id < head.entry_id:
        return _broken(base, cut, f"entries {cut} to {head.entry_id} are missing: the ledger was cut short",
                       f"第 {cut} 至 {head.entry_id} 条记录缺失:账本被截断")
    # Entries sealed while we walked moved the head forward in the same commit; read it again before
    # calling anything beyond it foreign.
    now_head = await _read_head(session)
    if now_head is None or not hmac.compare_digest(
            now_head.mac, head_mac(key, entry_id=now_head.entry_id, hash_=now_head.hash)):
        return _broken(base, cut, "the head checkpoint was removed or altered during the check",
                       "校验过程中链尾校验点被删除或篡改")
    end_id = now_head.entry_id
    if last_id > end_id:
        return _broken(base, end_id + 1, f"entry {end_id + 1} lies beyond the head checkpoint "
                       f"(entry {end_id}): it was not added by the sealer",
                       f"第 {end_id + 1} 条记录在链尾校验点(第 {end_id} 条)之后,并非由封存程序写入")
    if end_id <= last_id:
        at_head = last_hash if end_id == last_id else (await session.execute(
            select(LedgerEntry.hash).where(LedgerEntry.id == end_id))).scalar()
        if at_head != now_head.hash:
            return _broken(base, end_id, f"entry {end_id} does not match the head checkpoint",
                           f"第 {end_id} 条记录与链尾校验点不符")
    base.update(head_id=now_head.entry_id, head_hash=now_head.hash)
    return VerifyResult(ok=True, **base)


@dataclass
class LedgerFilter:
    action: str | None = None  # exact, or a prefix ending in "*" ("ack.*")
    subject_type: str | None = None
    subject_id: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _subject_int(dialect: str) -> Any:
    # Subject ids are text; only numeric ones can name a row, and PostgreSQL must not try to cast the rest.
    if dialect == "postgresql":
        return case((LedgerEntry.subject_id.regexp_match("^[0-9]{1,18}$"),
                     cast(LedgerEntry.subject_id, BigInteger)))
    return cast(LedgerEntry.subject_id, Integer)


def _in_scope(dialect: str, scope_path: str) -> Any:
    """Entries about warnings, notices, people, users, messages and drills inside the scope; others are global."""
    ancestors = scope_path.strip("/").split("/")[:-1]
    sid = _subject_int(dialect)

    def region_ok(code_col: Any) -> Any:
        return exists().where(Region.code == code_col, Scope(scope_path).predicate(Region.path))

    regional = {
        # A warning on the whole city concerns the county auditor too: targets above the scope count.
        "warning": exists().where(WarningTarget.warning_id == sid, or_(
            WarningTarget.region_code.in_(ancestors), region_ok(WarningTarget.region_code))),
        "notice": exists().where(Notice.id == sid, region_ok(Notice.region_code)),
        "person": exists().where(Person.id == sid, region_ok(Person.region_code)),
        "user": exists().where(User.id == sid, region_ok(User.region_code)),
        "outbox": exists().where(OutboxMessage.id == sid, region_ok(OutboxMessage.region_code)),
        # A drill's entries are seen from its scheduler's scope up: a 突击 drill's schedule must not reach the
        # people it will test through the audit log.
        "drill": exists().where(Drill.id == sid, Scope(scope_path).predicate(Drill.scope_path)),
    }
    return or_(LedgerEntry.subject_type.not_in(list(regional)),
               *[and_(LedgerEntry.subject_type == t, cond) for t, cond in regional.items()])


async def list_entries(session: AsyncSession, *, filters: LedgerFilter, scope_path: str | None,
                       before: int | None = None, limit: int = 100) -> tuple[list[Any], int | None]:
    """Newest first, `limit` at a time; returns the rows and the `before` cursor of the next page.

    `scope_path` None means the whole ledger (a user scoped to a root region).
    """
    q = select(LedgerEntry.__table__)
    f = filters
    if f.action:
        q = q.where(LedgerEntry.action.startswith(f.action[:-1], autoescape=True) if f.action.endswith("*")
                    else LedgerEntry.action == f.action)
    if f.subject_type:
        q = q.where(LedgerEntry.subject_type == f.subject_type)
    if f.subject_id:
        q = q.where(LedgerEntry.subject_id == f.subject_id)
    if f.actor:
        q = q.where(LedgerEntry.actor == f.actor)
    if f.since:
        q = q.where(LedgerEntry.at >= f.since)
    if f.until:
        q = q.where(LedgerEntry.at < f.until)
    if before is not None:
        q = q.where(LedgerEntry.id < before)
    if scope_path is not None:
        q = q.where(_in_scope(name(session), scope_path))
    rows = (await session.execute(q.order_by(LedgerEntry.id.desc()).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more else None)
