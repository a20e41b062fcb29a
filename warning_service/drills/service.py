"""演练 and 号码核验: schedule, change, cancel, list; the worker issues each run once when it is due.

A run is issued as an ordinary warning of the one engine: a drill as status `exercise` (texts carry 【演练】
and say it is a drill; loudspeakers stay silent: residents must not hear a drill as a real warning), a
number check as status `test` with its own text, reply required of every person on the roster, by SMS,
with a long deadline and nobody chased. Results are the warning's own figures; the 通报 counts exercises
apart, and tests not at all.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.actor import Actor
from warning_service.config import Settings
from warning_service.drills import claim, results
from warning_service.drills.models import (
    KIND_ZH,
    STATE_ZH,
    Drill,
    DrillCreate,
    DrillKind,
    DrillPublic,
    DrillState,
    DrillUpdate,
)
from warning_service.early_warning import service as warnings
from warning_service.early_warning import texts
from warning_service.early_warning.models import HAZARD_ZH, WarningCreate, WarningStatus
from warning_service.early_warning.policy import PolicyBook
from warning_service.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from warning_service.ledger import service as ledger
from warning_service.logging import get_logger
from warning_service.person.models import ROLE_ZH
from warning_service.region import service as regions
from warning_service.region.models import Region
from warning_service.region.scope import Scope

log = get_logger(__name__)

ANNOUNCED_TEXT = "这是一次预警叫应演练,不是真实预警。请按实战要求在时限内回复确认。"
SURPRISE_TEXT = "这是一次突击叫应演练(事先未通知),不是真实预警。请按实战要求在时限内回复确认,无需转告群众。"
CHECK_TEXT = "汛前号码核验:核验预警叫应责任人的接收号码,不是预警。"


def default_text(kind: str, announced: bool) -> str:
    if kind == DrillKind.number_check:
        return CHECK_TEXT
    return ANNOUNCED_TEXT if announced else SURPRISE_TEXT


def visible_to(drill: Drill, *, region_path: str, actor: Actor) -> bool:
    """An unannounced drill not yet issued is hidden from everyone below its scheduler's scope: the people it
    will test (a town's leaders, a village's cadres) must not learn of it from the console."""
    if not actor.covers(region_path):
        return False
    return drill.announced or drill.state != DrillState.scheduled or actor.covers(drill.scope_path)


async def _region_in_scope(session: AsyncSession, *, code: str, actor: Actor) -> Region:
    region = await regions.get(session, code=code)
    if not actor.covers(region.path):
        raise Forbidden(f"region {code} is outside your scope {actor.scope_code}",
                        f"区划 {code} 不在您的管辖范围 {actor.scope_code} 内", field="region_code")
    if region.level == "grid":
        raise Invalid("a drill is held for a village or above", "演练和号码核验须针对村(社区)及以上区域",
                      field="region_code")
    return region


def _check_due(due_at: datetime, now: datetime) -> None:
    if due_at <= now:
        raise Invalid("due_at must be in the future", "执行时间必须晚于当前时间", field="due_at")
    if due_at > now + timedelta(days=366):
        raise Invalid("due_at must be within a year", "执行时间须在一年之内", field="due_at")


async def schedule(session: AsyncSession, *, data: DrillCreate, actor: Actor, settings: Settings,
                   now: datetime) -> Drill:
    """Schedule a drill or a number check for a region in the actor's scope."""
    await _region_in_scope(session, code=data.region_code, actor=actor)
    _check_due(data.due_at, now)
    minutes = data.answer_minutes or (settings.number_check_answer_minutes
                                      if data.kind == DrillKind.number_check else 0)
    hours = settings.drill_notice_hours if data.notice_hours is None else data.notice_hours
    notice_at = (max(now, data.due_at - timedelta(hours=hours))
                 if data.kind == DrillKind.exercise and data.announced and hours > 0 else None)
    drill = Drill(kind=data.kind.value, region_code=data.region_code, hazard=data.hazard.value, notice_at=notice_at,
                  level=data.level.value, announced=data.announced if data.kind == DrillKind.exercise else True,
                  due_at=data.due_at, answer_minutes=minutes,
                  description=(data.description or "").strip() or default_text(data.kind, data.announced),
                  scope_code=actor.scope_code, scope_path=actor.scope_path, created_by=actor.name,
                  user_id=actor.user_id, created_at=now)
    session.add(drill)
    await session.flush()
    await ledger.append(session, at=now, actor=actor.name, action="drill.scheduled", subject_type="drill",
                        subject_id=drill.id, details=_details(drill))
    return drill


def _details(drill: Drill) -> dict[str, Any]:
    return {"kind": drill.kind, "region": drill.region_code, "hazard": drill.hazard, "level": drill.level,
            "announced": drill.announced, "due_at": drill.due_at.isoformat(), "answer_minutes": drill.answer_minutes}


async def get(session: AsyncSession, *, drill_id: int, actor: Actor) -> Drill:
    """A run the actor may see (an unannounced one before it is due only from its scheduler's level up)."""
    row = (await session.execute(select(Drill, Region.path).join(Region, Region.code == Drill.region_code)
                                 .where(Drill.id == drill_id))).first()
    if row is None:
        raise NotFound(f"drill {drill_id} not found", f"演练 {drill_id} 不存在", field="drill_id")
    drill, path = row
    if not visible_to(drill, region_path=path, actor=actor):
        raise NotFound(f"drill {drill_id} not found", f"演练 {drill_id} 不存在", field="drill_id")
    return drill


async def list_drills(session: AsyncSession, *, actor: Actor, kind: str | None = None,
                      limit: int = 200) -> list[tuple[Drill, str]]:
    """Runs in scope, the coming ones first (soonest first), then the finished ones (latest first);
    with each the region's name."""
    hidden = (Drill.announced.is_(False) & (Drill.state == DrillState.scheduled)
              & ~Scope(actor.scope_path).predicate(Drill.scope_path))
    stmt = (select(Drill, Region.name).join(Region, Region.code == Drill.region_code)
            .where(Scope(actor.scope_path).predicate(Region.path), ~hidden))
    if kind:
        stmt = stmt.where(Drill.kind == kind)
    rows = (await session.execute(stmt.order_by(Drill.due_at.desc(), Drill.id.desc()).limit(limit))).all()
    coming = sorted((r for r in rows if r[0].state == DrillState.scheduled), key=lambda r: r[0].due_at)
    return [(d, name) for d, name in coming + [r for r in rows if r[0].state != DrillState.scheduled]]


async def update(session: AsyncSession, *, drill_id: int, data: DrillUpdate, actor: Actor, now: datetime) -> Drill:
    """Change a run that is still scheduled (time, level, announced, text)."""
    drill = await _changeable(session, drill_id=drill_id, actor=actor)
    values = {k: v.value if hasattr(v, "value") else v for k, v in data.model_dump(exclude_none=True).items()}
    if drill.kind == DrillKind.number_check:
        values.pop("announced", None)
    if "due_at" in values:
        _check_due(values["due_at"], now)
    announced = values.get("announced", drill.announced)
    if drill.notice_warning_id is not None and (not announced or "due_at" in values):
        raise Conflict("its 演练预告 has gone out: cancel it and schedule a new one",
                       "该演练的预告已发出,不能改为突击或改期;请取消后重新安排", field="due_at")
    if not announced:
        values["notice_at"] = None
    elif drill.notice_at is not None and "due_at" in values:
        values["notice_at"] = max(now, values["due_at"] - (drill.due_at - drill.notice_at))
    if "description" in values:
        values["description"] = values["description"].strip() or default_text(drill.kind, announced)
    elif announced != drill.announced and drill.description == default_text(drill.kind, drill.announced):
        values["description"] = default_text(drill.kind, announced)  # the standard text follows the choice
    if values and not await claim.change_scheduled(session, drill_id=drill_id, values=values):
        raise _not_scheduled(drill)
    await session.refresh(drill)
    await ledger.append(session, at=now, actor=actor.name, action="drill.changed", subject_type="drill",
                        subject_id=drill_id, details=_details(drill))
    return drill


async def _changeable(session: AsyncSession, *, drill_id: int, actor: Actor) -> Drill:
    """A run the actor may change or cancel: only its scheduler's level or above (a town may not call off
    the county's drill of its own people)."""
    drill = await get(session, drill_id=drill_id, actor=actor)
    if not actor.covers(drill.scope_path):
        raise Forbidden(f"drill {drill_id} was scheduled by {drill.scope_code}; only that level or above may "
                        "change it", f"演练 {drill_id} 由 {drill.scope_code} 安排,只有该级或上级可以更改或取消",
                        field="drill_id")
    return drill


def _not_scheduled(drill: Drill) -> Conflict:
    return Conflict(f"drill {drill.id} is no longer scheduled", f"演练 {drill.id} 已发出或已取消,不能再更改",
                    field="state")


async def cancel(session: AsyncSession, *, drill_id: int, actor: Actor, now: datetime) -> Drill:
    """Cancel a run before it is due; one the worker has issued is over (lift its warning instead)."""
    drill = await _changeable(session, drill_id=drill_id, actor=actor)
    if not await claim.change_scheduled(session, drill_id=drill_id, values={
            "state": DrillState.cancelled, "cancelled_at": now, "cancelled_by": actor.name}):
        raise _not_scheduled(drill)
    await session.refresh(drill)
    await ledger.append(session, at=now, actor=actor.name, action="drill.cancelled", subject_type="drill",
                        subject_id=drill_id, details=_details(drill))
    return drill


def _overrides(drill: Drill, policy: PolicyBook) -> dict[str, Any]:
    if drill.kind == DrillKind.number_check:
        # Everyone on the roster, by SMS, with a long deadline and nobody chased: the point is to learn which
        # numbers fail or stay silent, not to wake anyone's superior.
        return {"purpose": "number_check", "roles": list(ROLE_ZH), "ack_required": True,
                "ack_deadline": float(drill.answer_minutes * 60), "channels": ["sms"], "recall_channel": None,
                "recall_count": 0, "escalate": False, "call_deputy": False, "duty_room": False,
                "duty_watch": False, "forwarded_from": None}
    channels = [c for c in policy.resolve(drill.hazard, drill.level).channels if c != "broadcast"] or ["sms"]
    return {"purpose": "exercise", "channels": channels, "forwarded_from": None}


def _warning_data(drill: Drill, settings: Settings) -> WarningCreate:
    if drill.kind == DrillKind.number_check:
        return WarningCreate(hazard=drill.hazard, level="blue", status=WarningStatus.test, title="汛前号码核验",
                             description=drill.description, targets=[drill.region_code],
                             expires_at=drill.due_at + timedelta(minutes=drill.answer_minutes + 1))
    return WarningCreate(hazard=drill.hazard, level=drill.level, status=WarningStatus.exercise,
                         description=drill.description, targets=[drill.region_code],
                         expires_at=drill.due_at + timedelta(minutes=settings.drill_window_minutes))


def _notice_data(drill: Drill, *, region_name: str, now: datetime) -> WarningCreate:
    hazard = HAZARD_ZH.get(drill.hazard, drill.hazard)
    text = (f"{texts.clock(drill.due_at, now=now)}将开展{region_name}{hazard}预警叫应演练,届时请按实战要求在时限内"
            "回复确认。本条无需回复。")
    return WarningCreate(hazard=drill.hazard, level="blue", status=WarningStatus.test, title="演练预告",
                         description=text, targets=[drill.region_code], expires_at=drill.due_at)


async def issue_notices(session: AsyncSession, *, policy: PolicyBook, settings: Settings, now: datetime,
                        limit: int = 1) -> list[int]:
    """Send the 演练预告 of the announced runs whose notice time has come: an information message (status test,
    text of its own, no reply asked, nobody chased) to the roles the drill's level will reach. Returns the ids
    it settled."""
    done: list[int] = []
    for drill_id in await claim.claim_notices(session, now=now, limit=limit):
        drill = await session.get(Drill, drill_id)
        assert drill is not None
        actor = _actor(drill)
        if drill.due_at <= now:
            drill.notice_at = None  # too late to announce: the drill itself is due
            done.append(drill.id)  # type: ignore[arg-type]
            continue
        roles = policy.snapshot(drill.hazard, drill.level)["roles"]
        region = await regions.get(session, code=drill.region_code)
        try:
            async with session.begin_nested():
                result = await warnings.issue_warning(
                    session, data=_notice_data(drill, region_name=region.name, now=now), actor=actor, policy=policy,
                    settings=settings, now=now, source="drill",
                    policy_overrides={"purpose": "drill_notice", "roles": roles, "ack_required": False,
                                      "channels": ["sms"], "recall_channel": None, "recall_count": 0,
                                      "escalate": False, "call_deputy": False, "duty_room": False,
                                      "duty_watch": False, "forwarded_from": None})
        except DomainError as exc:
            # Announcing is a courtesy: the drill goes ahead when due; the failure is recorded.
            drill.notice_at = None
            await ledger.append(session, at=now, actor=actor.name, action="drill.notice_failed",
                                subject_type="drill", subject_id=drill.id, details={"error": exc.message_zh})
            done.append(drill.id)  # type: ignore[arg-type]
            continue
        drill.notice_warning_id = result.warning.id
        await ledger.append(session, at=now, actor=actor.name, action="drill.announced", subject_type="drill",
                            subject_id=drill.id, details={"warning_id": result.warning.id,
                                                          "recipients": result.recipient_count})
        done.append(drill.id)  # type: ignore[arg-type]
    await session.flush()
    return done


def _actor(drill: Drill) -> Actor:
    return Actor(name=f"system:drill-{drill.id}", scope_path=drill.scope_path, scope_code=drill.scope_code,
                 user_id=drill.user_id)


async def issue_due(session: AsyncSession, *, policy: PolicyBook, settings: Settings, now: datetime,
                    limit: int = 1) -> list[int]:
    """Issue the due runs this worker claims (in the caller's transaction). Returns the ids it settled.

    A run that cannot be issued (its region emptied, its scheduler's scope gone) is marked failed with the
    reason rather than retried forever; the others in the batch go ahead."""
    done: list[int] = []
    for drill_id in await claim.claim_due(session, now=now, limit=limit):
        drill = await session.get(Drill, drill_id)
        assert drill is not None
        actor = _actor(drill)
        try:
            async with session.begin_nested():
                result = await warnings.issue_warning(session, data=_warning_data(drill, settings), actor=actor,
                                                      policy=policy, settings=settings, now=now, source="drill",
                                                      policy_overrides=_overrides(drill, policy))
        except DomainError as exc:
            drill.state, drill.error = DrillState.failed, f"{exc.message_zh} ({exc.message_en})"[:500]
            await ledger.append(session, at=now, actor=actor.name, action="drill.failed", subject_type="drill",
                                subject_id=drill.id, details={"error": drill.error})
            log.warning("drill_failed", drill_id=drill.id, error=drill.error)
            done.append(drill.id)  # type: ignore[arg-type]
            continue
        drill.state, drill.warning_id, drill.issued_at = DrillState.issued, result.warning.id, now
        await ledger.append(session, at=now, actor=actor.name, action="drill.issued", subject_type="drill",
                            subject_id=drill.id, details={**_details(drill), "warning_id": result.warning.id,
                                                          "recipients": result.recipient_count})
        log.info("drill_issued", drill_id=drill.id, kind=drill.kind, warning_id=result.warning.id,
                 recipients=result.recipient_count, late_seconds=(now - drill.due_at).total_seconds())
        done.append(drill.id)  # type: ignore[arg-type]
    await session.flush()
    return done



async def public(session: AsyncSession, rows: list[tuple[Drill, str]], *, now: datetime) -> list[DrillPublic]:
    """The API's view of runs (with their region's name), issued ones with their figures."""
    figs = await results.figures(session, drills=[d for d, _ in rows], now=now)
    return [DrillPublic(id=d.id, kind=d.kind, kind_zh=KIND_ZH[d.kind], region_code=d.region_code,  # type: ignore[arg-type]
                        region_name=name, hazard=d.hazard, level=d.level, announced=d.announced, due_at=d.due_at,
                        answer_minutes=d.answer_minutes, notice_at=d.notice_at, notice_warning_id=d.notice_warning_id,
                        description=d.description, state=d.state,  # type: ignore[arg-type]
                        state_zh=STATE_ZH[d.state], warning_id=d.warning_id, created_by=d.created_by,
                        created_at=d.created_at, issued_at=d.issued_at, cancelled_at=d.cancelled_at, error=d.error,
                        result=figs.get(d.id))  # type: ignore[arg-type]
            for d, name in rows]


async def with_name(session: AsyncSession, drill: Drill) -> list[tuple[Drill, str]]:
    return [(drill, (await regions.get(session, code=drill.region_code)).name)]
