"""The ledger for auditors: verify the chain, list and filter entries. There is no write endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from warning_service.deps import Auditor, SessionDep, SettingsDep
from warning_service.errors import Invalid, NotFound
from warning_service.ledger import service
from warning_service.report.params import check_period, parse_when

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class LedgerEntryPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class LedgerPage(BaseModel):
    items: list[LedgerEntryPublic]
    # Pass as `before` to get the next (older) page; null on the last page.
    next_before: int | None


class VerifyPublic(BaseModel):
    ok: bool
    checked: int
    pending: int
    oldest_pending_at: datetime | None
    first_broken_id: int | None
    reason: str | None
    reason_zh: str | None
    head_id: int
    head_hash: str | None


@router.get("/verify", response_model=VerifyPublic)
async def verify_ledger(principal: Auditor, session: SessionDep, settings: SettingsDep,
                        known_id: int | None = Query(None, ge=1, description="an entry id recorded earlier"),
                        known_hash: str | None = Query(None, pattern="^[0-9a-f]{64}$")) -> VerifyPublic:
    """Check the whole hash chain and its signed head; names the first broken entry.

    Pass a head (`known_id`, `known_hash`) written down from an earlier verify to also catch a ledger
    rolled back to an older state together with its checkpoint.
    """
    if (known_id is None) != (known_hash is None):
        raise Invalid("give known_id and known_hash together", "known_id 与 known_hash 需同时提供",
                      field="known_hash" if known_hash is None else "known_id")
    key = service.ledger_key(settings.secret_key.get_secret_value())
    known = (known_id, known_hash) if known_id is not None and known_hash is not None else None
    result = await service.verify(session, key=key, known=known)
    return VerifyPublic(**result.__dict__)


@router.get("/ledger", response_model=LedgerPage)
async def list_ledger(principal: Auditor, session: SessionDep,
                      action: str | None = Query(None, max_length=41, description='exact or prefix: "ack.*"'),
                      subject_type: str | None = Query(None, max_length=30),
                      subject_id: str | None = Query(None, max_length=80),
                      actor: str | None = Query(None, max_length=100),
                      from_: str | None = Query(None, alias="from", description="date or ISO time (Beijing)"),
                      to: str | None = Query(None, description="date (inclusive) or ISO time (exclusive)"),
                      before: int | None = Query(None, ge=1, description="cursor: older than this id"),
                      limit: int = Query(100, ge=1, le=1000)) -> LedgerPage:
    """Ledger entries in your scope, newest first, filtered by action, subject, actor and time."""
    since = parse_when(from_, field="from")
    until = parse_when(to, field="to", end_of_day=True)
    check_period(since, until)
    filters = service.LedgerFilter(action=action, subject_type=subject_type, subject_id=subject_id,
                                   actor=actor, since=since, until=until)
    # A user scoped to the root of the tree sees the whole ledger; others the entries about their regions.
    scope_path = None if principal.scope.parent_code is None else principal.scope.path
    rows, next_before = await service.list_entries(session, filters=filters, scope_path=scope_path,
                                                   before=before, limit=limit)
    return LedgerPage(items=[LedgerEntryPublic.model_validate(r, from_attributes=True) for r in rows],
                      next_before=next_before)


@router.get("/ledger/{entry_id}", response_model=LedgerEntryPublic)
async def get_entry(entry_id: int, principal: Auditor, session: SessionDep) -> LedgerEntryPublic:
    """One ledger entry, if it concerns your scope."""
    scope_path = None if principal.scope.parent_code is None else principal.scope.path
    rows, _ = await service.list_entries(session, filters=service.LedgerFilter(), scope_path=scope_path,
                                         before=entry_id + 1, limit=1)
    if not rows or rows[0].id != entry_id:
        raise NotFound(f"ledger entry {entry_id} not found in your scope",
                       f"您的管辖范围内没有第 {entry_id} 条账本记录", field="entry_id")
    return LedgerEntryPublic.model_validate(rows[0], from_attributes=True)

