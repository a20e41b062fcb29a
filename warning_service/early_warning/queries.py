"""Reading warnings and their notices, inside a scope."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from warning_service.acknowledgment.models import Acknowledgment
from warning_service.actor import Actor
from warning_service.early_warning.models import EarlyWarning, WarningRevision, WarningTarget
from warning_service.errors import NotFound
from warning_service.notice.models import ANSWERABLE_STATES, Notice, NoticeReason
from warning_service.person.models import Person
from warning_service.region import service as regions
from warning_service.region.models import Region
from warning_service.region.scope import Scope


def _overlaps_scope(actor: Actor) -> Any:
    """A warning is visible if a target lies inside the scope or contains it (a province-wide warning)."""
    return _targets_overlap(actor.scope_path)


def _targets_overlap(path: str) -> Any:
    """The warning has a target inside the subtree at `path`, or one that contains it."""
    return exists().where(
        WarningTarget.warning_id == EarlyWarning.id,
        or_(WarningTarget.region_code.in_(regions.ancestor_codes(path)),
            exists().where(Region.code == WarningTarget.region_code, Scope(path).predicate(Region.path))))


async def list_warnings(session: AsyncSession, *, actor: Actor, status: str | None = None,
                        hazard: str | None = None, level: str | None = None, state: str | None = None,
                        region: str | None = None, issued_from: datetime | None = None,
                        issued_to: datetime | None = None, offset: int = 0, limit: int = 50,
                        active_first: bool = False, oldest_first: bool = False) -> tuple[int, list[EarlyWarning]]:
    q = select(EarlyWarning).where(_overlaps_scope(actor))
    if region:
        r = await regions.get(session, code=region)
        q = q.where(_targets_overlap(r.path))
    for col, value in ((EarlyWarning.status, status), (EarlyWarning.hazard, hazard), (EarlyWarning.level, level),
                       (EarlyWarning.state, state)):
        if value:
            q = q.where(col == value)
    if issued_from:
        q = q.where(EarlyWarning.issued_at >= issued_from)
    if issued_to:
        q = q.where(EarlyWarning.issued_at < issued_to)
    total = (await session.execute(select(func.count()).select_from(q.subquery()))).scalar_one()
    order = ([EarlyWarning.issued_at, EarlyWarning.id] if oldest_first
             else [EarlyWarning.issued_at.desc(), EarlyWarning.id.desc()])
    if active_first:
        # The duty room's list: what is still being called comes before what waits for sign-off, then history.
        order.insert(0, case((EarlyWarning.state == "active", 0), (EarlyWarning.state == "pending", 1), else_=2))
    rows = (await session.execute(q.order_by(*order).offset(offset).limit(limit))).scalars().all()
    return total, list(rows)


async def get_visible(session: AsyncSession, *, warning_id: int, actor: Actor) -> EarlyWarning:
    w = (await session.execute(select(EarlyWarning).where(EarlyWarning.id == warning_id, _overlaps_scope(actor))
                               )).scalar_one_or_none()
    if w is None:
        # Outside the scope looks the same as absent: no leaking of other counties' warnings.
        raise NotFound(f"warning {warning_id} not found", f"预警 {warning_id} 不存在", field="warning_id")
    return w


async def notice_counts(session: AsyncSession, *, warning_id: int, actor: Actor) -> dict[str, dict[str, int]]:
    """Notices by state, for primary recipients and for escalations, inside the actor's scope."""
    rows = (await session.execute(
        select(Notice.reason, Notice.state, func.count()).join(Region, Region.code == Notice.region_code)
        .where(Notice.warning_id == warning_id, actor.scope.predicate(Region.path))
        .group_by(Notice.reason, Notice.state))).all()
    out: dict[str, dict[str, int]] = {}
    for reason, state, n in rows:
        out.setdefault(reason, {})[state] = n
    return out


async def revisions(session: AsyncSession, *, warning_id: int) -> list[WarningRevision]:
    return list((await session.execute(select(WarningRevision).where(WarningRevision.warning_id == warning_id)
                                       .order_by(WarningRevision.revision))).scalars())


async def list_notices(session: AsyncSession, *, warning_id: int, actor: Actor, state: str | None = None,
                       region: str | None = None, reason: str | None = None, offset: int = 0, limit: int = 100
                       ) -> tuple[int, list[dict[str, Any]]]:
    path = actor.scope_path
    if region:
        r = await regions.get(session, code=region)
        if actor.covers(r.path):
            path = r.path
        else:
            return 0, []
    # An escalation names the silent person it is about, so the board can group it under them.
    subject, subject_person = aliased(Notice), aliased(Person)
    q = (select(Notice.id, Notice.person_id, Person.name, Person.phone, Notice.role, Notice.region_code,
                Notice.reason, Notice.state, Notice.deadline, Notice.acknowledged_at, Notice.attempt_count,
                Notice.escalation_of, Acknowledgment.path.label("ack_path"), Acknowledgment.late,
                subject_person.name.label("subject_name"), subject_person.phone.label("subject_phone"),
                subject.role.label("subject_role"), subject.region_code.label("subject_region_code"))
         .join(Person, Person.id == Notice.person_id)
         .join(Region, Region.code == Notice.region_code)
         .outerjoin(subject, subject.id == Notice.escalation_of)
         .outerjoin(subject_person, subject_person.id == subject.person_id)
         .outerjoin(Acknowledgment, and_(Acknowledgment.notice_id == Notice.id, Acknowledgment.round == Notice.round))
         .where(Notice.warning_id == warning_id, Scope(path).predicate(Region.path)))
    # The missing list (all reasons, or primary ones asked for) carries each person's chain under their row.
    grouped = state == "unanswered" and reason in (None, "", NoticeReason.primary)
    if state == "unanswered":
        # The duty officer's missing list: everyone who still owes an answer, or never gave one. The deputies
        # and levels above told about someone are listed under that person, not as rows of their own.
        q = q.where(Notice.requires_ack.is_(True), Notice.state.in_(ANSWERABLE_STATES))
        if grouped:
            q = q.where(Notice.reason == NoticeReason.primary)
    elif state:
        q = q.where(Notice.state.in_(state.split(",")))
    if reason:
        q = q.where(Notice.reason == reason)
    total = (await session.execute(select(func.count()).select_from(q.subquery()))).scalar_one()
    rows = (await session.execute(q.order_by(Region.path, Notice.id).offset(offset).limit(limit))).all()
    paths = await regions.region_paths(session, list({r.region_code for r in rows}
                                                     | {r.subject_region_code for r in rows if r.subject_region_code}))
    chains = await _chains(session, [r.id for r in rows]) if grouped else {}
    return total, [{
        "id": r.id, "person_id": r.person_id, "name": r.name, "phone": r.phone, "role": r.role,
        "region_code": r.region_code, "region_path": paths.get(r.region_code, r.region_code), "reason": r.reason,
        "state": r.state, "deadline": r.deadline, "acknowledged_at": r.acknowledged_at,
        "attempts": r.attempt_count, "escalation_of": r.escalation_of, "ack_path": r.ack_path, "late": r.late,
        "subject": ({"name": r.subject_name, "phone": r.subject_phone, "role": r.subject_role,
                     "region_path": paths.get(r.subject_region_code, r.subject_region_code)}
                    if r.escalation_of else None),
        **({"chain": chains.get(r.id, [])} if grouped else {}),
    } for r in rows]


async def _chains(session: AsyncSession, root_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """root notice id → the deputies and levels above called about it, in the order they were called."""
    if not root_ids:
        return {}
    rows = (await session.execute(
        select(Notice.root_id, Notice.id, Person.name, Person.phone, Notice.role, Notice.reason, Notice.state)
        .join(Person, Person.id == Notice.person_id)
        .where(Notice.root_id.in_(root_ids), Notice.reason != NoticeReason.primary).order_by(Notice.id))).all()
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r.root_id, []).append({"id": r.id, "name": r.name, "phone": r.phone, "role": r.role,
                                              "reason": r.reason, "state": r.state})
    return out
