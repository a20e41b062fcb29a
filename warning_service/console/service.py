"""What the console's pages show, computed set-based: one query for the page of warnings, one for their figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.actor import Actor
from warning_service.drills import results as drill_results
from warning_service.early_warning import queries
from warning_service.early_warning.models import UNSENT_STATES, EarlyWarning
from warning_service.errors import Invalid
from warning_service.notice.models import ANSWERABLE_STATES, Notice, NoticeReason
from warning_service.person import service as people
from warning_service.person.models import ROLE_ZH, Person
from warning_service.region import service as regions
from warning_service.region.models import Region
from warning_service.region.scope import Scope

PAGE_SIZE = 50


@dataclass(frozen=True)
class WarningFilter:
    state: str | None = None
    hazard: str | None = None
    level: str | None = None
    status: str | None = None
    region: str | None = None
    issued_from: datetime | None = None
    issued_to: datetime | None = None


@dataclass(frozen=True)
class WarningRow:
    warning: EarlyWarning
    required: int  # notices that must be answered, primary recipients in the viewer's scope
    acknowledged: int
    unanswered: int

    @property
    def rate(self) -> float | None:
        return self.acknowledged / self.required if self.required else None

    @property
    def deadline(self) -> datetime | None:
        """When the first answers are due: issue time plus the policy's deadline (None if no answer is asked)."""
        policy = self.warning.policy or {}
        if not policy.get("ack_required") or self.warning.state in UNSENT_STATES:
            return None
        return self.warning.issued_at + timedelta(seconds=float(policy.get("ack_deadline", 0)))


async def warning_rows(session: AsyncSession, *, actor: Actor, filters: WarningFilter, page: int = 1,
                       page_size: int = PAGE_SIZE) -> tuple[int, list[WarningRow]]:
    """Warnings visible to the actor, active first then newest, each with its 叫应 figures in the actor's scope."""
    total, warnings = await queries.list_warnings(
        session, actor=actor, status=filters.status, hazard=filters.hazard, level=filters.level,
        state=filters.state, region=filters.region, issued_from=filters.issued_from, issued_to=filters.issued_to,
        offset=(page - 1) * page_size, limit=page_size, active_first=True)
    if not warnings:
        return total, []
    ids = [w.id for w in warnings]
    required = Notice.requires_ack.is_(True)
    rows = (await session.execute(
        select(Notice.warning_id,
               func.sum(case((required, 1), else_=0)),
               func.sum(case((required & (Notice.acknowledged_at.is_not(None)), 1), else_=0)),
               func.sum(case((required & Notice.state.in_(ANSWERABLE_STATES), 1), else_=0)),
               func.sum(case((required & Notice.acknowledged_at.is_(None), 1), else_=0)))
        .join(Region, Region.code == Notice.region_code)
        .where(Notice.warning_id.in_(ids), Notice.reason == "primary", Scope(actor.scope_path).predicate(Region.path))
        .group_by(Notice.warning_id))).all()
    figures = {r[0]: tuple(int(v or 0) for v in r[1:]) for r in rows}

    def row(w: EarlyWarning) -> WarningRow:
        required_n, acked, still_open, never = figures.get(w.id, (0, 0, 0, 0))  # type: ignore[arg-type]
        # Once lifted or expired the notices are closed: "unanswered" is then who never answered at all.
        return WarningRow(w, required_n, acked, still_open if w.state == "active" else never)

    return total, [row(w) for w in warnings]


async def region_by_name(session: AsyncSession, *, scope_path: str, q: str) -> Region:
    """The one region in scope the user means by a Chinese name: its exact name, else the only one containing it."""
    found = await regions.search(session, scope_path=scope_path, q=q, limit=20)
    exact = [r for r in found if r.name == q]
    if len(exact) == 1 or len(found) == 1:
        return exact[0] if exact else found[0]
    if not found:
        raise Invalid(f"region: no region named like {q!r} in your scope",
                      f"区域:您的管辖范围内没有名称含“{q}”的区域", field="region_q")
    names = await regions.region_paths(session, [r.code for r in (exact or found)[:5]])
    listed = "、".join(names.values())
    raise Invalid(f"region: {q!r} matches several regions; pick one from the list",
                  f"区域:名称含“{q}”的区域有多个({listed}等),请从下拉列表中选择", field="region_q")


async def latest_active(session: AsyncSession, *, actor: Actor) -> int | None:
    """The newest active warning the actor can see: the board the duty room watches."""
    _, rows = await queries.list_warnings(session, actor=actor, state="active", limit=1, active_first=True)
    return rows[0].id if rows else None


@dataclass(frozen=True)
class RosterHealth:
    uncovered: dict[str, dict]  # level -> person.service.roster_health(...) of that level
    without_phone_total: int
    without_phone: list[Any]
    duplicate_phones: list[Any]  # (phone, count)
    unknown_roles: list[Any]  # (role, count)
    check_failed_total: int = 0  # people whose latest 号码核验 failed (drills/)
    check_failed: list[Any] = field(default_factory=list)  # drills.models.CheckFailure


async def roster_health(session: AsyncSession, *, scope_path: str, now: datetime, limit: int = 50) -> RosterHealth:
    """What to fix before the flood season: empty regions, people no call can reach, shared phones, odd roles."""
    in_scope = (Scope(scope_path).predicate(Region.path), Person.active.is_(True))
    uncovered = {level: await people.roster_health(session, scope_path=scope_path, level=level, limit=limit)
                 for level in ("town", "village", "grid")}
    no_phone = (select(Person.id, Person.name, Person.role, Person.region_code)
                .join(Region, Region.code == Person.region_code)
                .where(*in_scope, or_(Person.phone.is_(None), Person.phone == "")))
    no_phone_total = (await session.execute(select(func.count()).select_from(no_phone.subquery()))).scalar_one()
    no_phone_rows = (await session.execute(no_phone.order_by(Region.path, Person.id).limit(limit))).all()
    dupes = (await session.execute(
        select(Person.phone, func.count()).join(Region, Region.code == Person.region_code)
        .where(*in_scope, Person.phone.is_not(None), Person.phone != "")
        .group_by(Person.phone).having(func.count() > 1).order_by(func.count().desc(), Person.phone).limit(limit)
    )).all()
    unknown = (await session.execute(
        select(Person.role, func.count()).join(Region, Region.code == Person.region_code)
        .where(*in_scope, Person.role.not_in(list(ROLE_ZH))).group_by(Person.role).order_by(Person.role)
    )).all()
    check_total, check_failed = await drill_results.roster_failures(session, scope_path=scope_path, now=now,
                                                                    limit=limit)
    return RosterHealth(uncovered=uncovered, without_phone_total=int(no_phone_total),
                        without_phone=list(no_phone_rows), duplicate_phones=list(dupes), unknown_roles=list(unknown),
                        check_failed_total=check_total, check_failed=check_failed)


@dataclass(frozen=True)
class FinalFigures:
    """A lifted or expired warning's outcome, read from its notices (they are closed, so live tiles would be 0)."""

    reached: int
    acknowledged: int
    late: int
    unanswered: int
    escalations: int

    @property
    def rate(self) -> float | None:
        return self.acknowledged / self.reached if self.reached else None


async def final_figures(session: AsyncSession, *, warning_id: int, actor: Actor) -> FinalFigures:
    primary = (Notice.reason == NoticeReason.primary) & Notice.requires_ack.is_(True)
    acked = Notice.acknowledged_at.is_not(None)
    late = acked & Notice.deadline.is_not(None) & (Notice.acknowledged_at > Notice.deadline)
    row = (await session.execute(
        select(func.sum(case((primary, 1), else_=0)), func.sum(case((primary & acked, 1), else_=0)),
               func.sum(case((primary & late, 1), else_=0)), func.sum(case((primary & ~acked, 1), else_=0)),
               func.sum(case((Notice.reason == "escalation", 1), else_=0)))
        .join(Region, Region.code == Notice.region_code)
        .where(Notice.warning_id == warning_id, Scope(actor.scope_path).predicate(Region.path)))).one()
    return FinalFigures(*(int(v or 0) for v in row))


async def deputies(session: AsyncSession, *, people: list[Person]) -> dict[int, Any]:
    """The B岗 (deputy) of each listed person, by person id, in one query."""
    ids = {p.deputy_id for p in people if p.deputy_id}
    if not ids:
        return {}
    rows = (await session.execute(select(Person.id, Person.name, Person.phone).where(Person.id.in_(ids)))).all()
    by_id = {r.id: r for r in rows}
    return {p.id: by_id[p.deputy_id] for p in people if p.deputy_id in by_id}  # type: ignore[misc]
