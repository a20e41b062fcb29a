"""Append decisions, seal them into the HMAC chain, and verify the chain."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.db import dialect_name
from warning_service.ledger.models import LedgerEntry, LedgerPending

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


async def seal(session: AsyncSession, *, key: bytes, batch_size: int = 5000) -> int:
    """Move up to `batch_size` pending decisions into the chained ledger; returns how many."""
    if dialect_name(session) == "postgresql":
        got = (await session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _SEAL_LOCK})).scalar()
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
    last = (await session.execute(select(LedgerEntry.id, LedgerEntry.hash).order_by(LedgerEntry.id.desc()).limit(1))
            ).first()
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
    return len(out)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    pending: int
    first_broken_id: int | None = None
    reason: str | None = None
    reason_zh: str | None = None


async def verify(session: AsyncSession, *, key: bytes, page: int = 5000) -> VerifyResult:
    """Walk the chain in order; name the first row whose content or link does not hold."""
    prev_hash, expected_id, checked, after = GENESIS, 1, 0, 0
    pending = (await session.execute(select(func.count()).select_from(LedgerPending))).scalar_one()
    while True:
        rows = (await session.execute(
            select(LedgerEntry).where(LedgerEntry.id > after).order_by(LedgerEntry.id).limit(page)
        )).scalars().all()
        if not rows:
            return VerifyResult(ok=True, checked=checked, pending=pending)
        for e in rows:
            if e.id != expected_id:
                return VerifyResult(False, checked, pending, expected_id,
                                    f"entry {expected_id} is missing (next present is {e.id})",
                                    f"第 {expected_id} 条记录缺失(下一条为 {e.id})")
            if e.prev_hash != prev_hash:
                return VerifyResult(False, checked, pending, e.id,
                                    f"entry {e.id} does not link to the entry before it",
                                    f"第 {e.id} 条记录与前一条的链接断开")
            h = entry_hash(key, prev_hash=e.prev_hash, entry_id=e.id, at=e.at, actor=e.actor, action=e.action,
                           subject_type=e.subject_type, subject_id=e.subject_id, details=e.details)
            if not hmac.compare_digest(h, e.hash):
                return VerifyResult(False, checked, pending, e.id,
                                    f"entry {e.id} was altered (its content does not match its hash)",
                                    f"第 {e.id} 条记录被篡改(内容与哈希不符)")
            prev_hash, expected_id, checked, after = e.hash, e.id + 1, checked + 1, e.id
