"""Evacuation as part of a warning: opening 转移任务 and special notices, the decisions on them, arrivals at
shelters, and 解除转移.

Opening is set-based and runs in the warning's own transaction (early_warning/service.py calls
`open_for_warning` once its notices are open): one INSERT … SELECT writes a task per household reached, each
naming a notice id reserved for it (notice/service.reserved_ids), one more opens those notices to the
包户责任人, one more queues their SMS. The notice carries the 叫应 (link, SMS reply, key press, the chase);
the task carries what happened to the household.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, and_, cast, exists, func, literal, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.db import UTCDateTime
from warning_service.delivery.models import MessageKind, OutboxMessage
from warning_service.dialect import chunks, in_ids, insert, plan_each_time
from warning_service.early_warning import fanout
from warning_service.early_warning.models import LEVEL_RANK, EarlyWarning
from warning_service.errors import Conflict, Forbidden, Invalid, NotFound
from warning_service.evacuation import shelters as shelter_pages
from warning_service.evacuation.models import (
    MESSAGE_COLUMNS,
    TASK_STATUS_ZH,
    DangerZone,
    EvacThreshold,
    EvacuationRelease,
    EvacuationTask,
    Household,
    Shelter,
    SpecialNotice,
    SpecialPerson,
    SpecialPlace,
    Subject,
    TaskDecision,
    TaskStatus,
)
from warning_service.ledger import service as ledger
from warning_service.logging import get_logger
from warning_service.notice import service as notices
from warning_service.notice.models import Notice, NoticeReason
from warning_service.person.models import Person
from warning_service.region.models import Region
from warning_service.region.scope import Scope

log = get_logger(__name__)
T, H, Z, TH = EvacuationTask.__table__, Household.__table__, DangerZone.__table__, EvacThreshold.__table__
SN, SP, SPL, SH = SpecialNotice.__table__, SpecialPerson.__table__, SpecialPlace.__table__, Shelter.__table__
P, R, OUTBOX, N = Person.__table__, Region.__table__, OutboxMessage.__table__, Notice.__table__
TASK_COLUMNS = [
    "notice_id",
    "warning_id",
    "household_id",
    "zone_id",
    "keeper_id",
    "status",
    "returned_early",
    "created_at",
    "updated_at",
]
EVACUATION_REASONS = (NoticeReason.evacuation.value, NoticeReason.special.value)


@dataclass
class Opened:
    tasks: int = 0  # households
    special_people: int = 0
    special_places: int = 0
    messages: int = 0
    keepers: int = 0
    shelters: int = 0


def _meets(subject: Subject, subject_id: Any, warning: EarlyWarning) -> Any:
    """SQL: the subject must be cleared at this warning's hazard × level."""
    return exists().where(
        TH.c.subject == subject.value,
        TH.c.subject_id == subject_id,
        TH.c.hazard == warning.hazard,
        TH.c.min_rank <= LEVEL_RANK[warning.level],
    )


async def open_for_warning(
    session: AsyncSession, *, warning: EarlyWarning, target_paths: list[str], now: datetime
) -> Opened:
    """Open a 转移任务 per household in zones inside the area whose threshold the warning meets, under ONE
    notice (and one SMS) per 包户责任人 listing their households, and a notice to the helper or contact of
    every special person and place it meets; tell shelter managers of the area. Idempotent per household
    and subject: an upgrade or a wider area calls it again and only reaches what the revision adds; a
    keeper it gives more households to keeps their one notice, asked again if they had answered it."""
    out = Opened()
    await plan_each_time(session)
    inside = Scope.any_of(R.c.path, target_paths)
    floor = await notices.max_id(session)
    reached = (
        select(H.c.id.label("household_id"), Z.c.id.label("zone_id"), H.c.keeper_id.label("keeper_id"))
        .select_from(
            H.join(Z, Z.c.id == H.c.zone_id).join(R, R.c.code == Z.c.region_code).join(P, P.c.id == H.c.keeper_id)
        )
        .where(
            H.c.active.is_(True),
            Z.c.active.is_(True),
            P.c.active.is_(True),
            inside,
            _meets(Subject.zone, Z.c.id, warning),
        )
    ).cte("reached")
    # Each keeper's one notice id: the one they already have (an upgrade reaching more of their households),
    # else a fresh one reserved for them (notice/service.reserved_ids), so ONE statement writes every task
    # naming its keeper's notice, and reads the registers once.
    distinct_keepers = select(reached.c.keeper_id).distinct().subquery("dk")
    existing = (
        select(func.max(N.c.id))
        .where(
            N.c.warning_id == warning.id,
            N.c.person_id == distinct_keepers.c.keeper_id,
            N.c.reason == NoticeReason.evacuation.value,
        )
        .scalar_subquery()
    )
    reserved = await notices.reserved_ids(session, floor=floor, order_by=distinct_keepers.c.keeper_id)
    keepers = select(distinct_keepers.c.keeper_id, func.coalesce(existing, reserved).label("notice_id")).cte("keepers")
    src = select(
        keepers.c.notice_id,
        literal(warning.id, Integer),
        reached.c.household_id,
        reached.c.zone_id,
        reached.c.keeper_id,
        literal(TaskStatus.pending.value),
        literal(False),
        literal(now, UTCDateTime),
        literal(now, UTCDateTime),
    ).select_from(reached.join(keepers, keepers.c.keeper_id == reached.c.keeper_id))
    # A household already tasked for this warning (an update) is skipped by the unique constraint, not by an
    # anti-join against evacuation_task: with statistics taken while the table was empty, PostgreSQL plans
    # that as a nested loop rescanning the rows the same INSERT adds — quadratic on a fresh install.
    # RETURNING hands back what the rest needs (the keepers' notices to open, the zones for the shelters), so
    # nothing below reads the 16,000 rows just written again.
    opened = (
        await session.execute(
            insert(session, T).from_select(TASK_COLUMNS, src)
            .on_conflict_do_nothing(index_elements=["warning_id", "household_id"])
            .returning(T.c.notice_id, T.c.keeper_id, T.c.zone_id)
        )
    ).all()
    out.tasks = len(opened)
    pairs = sorted({(r.notice_id, r.keeper_id) for r in opened})
    out.keepers = len(pairs)
    await notices.open_keepers(
        session, warning=warning, now=now, reserved=[(nid, pid) for nid, pid in pairs if nid > floor]
    )
    # A revision that gives a keeper more households asks them again on their one notice.
    await notices.reopen_keepers(session, warning=warning, now=now, ids=[nid for nid, _ in pairs if nid <= floor])
    keeper_notices = [nid for nid, _ in pairs]
    if warning.revision > 1 and any(nid <= floor for nid in keeper_notices):
        # The revision's text lists all their households: an earlier one still unsent would say less.
        for part in chunks([nid for nid in keeper_notices if nid <= floor], 1000):
            await session.execute(
                update(OUTBOX)
                .where(
                    in_ids(session, OUTBOX.c.notice_id, part),
                    OUTBOX.c.kind == MessageKind.evacuation.value,
                    OUTBOX.c.status == "queued",
                    OUTBOX.c.revision < warning.revision,
                )
                .values(status="cancelled", error_code="superseded", updated_at=now)
            )
    out.special_people, out.special_places = await _open_special(session, warning=warning, inside=inside, now=now)
    if out.tasks or out.special_people or out.special_places:
        told = or_(
            and_(Notice.reason == NoticeReason.evacuation.value, in_ids(session, Notice.id, keeper_notices)),
            and_(Notice.id > floor, Notice.reason == NoticeReason.special.value),
        )
        out.messages = await fanout.queue_person_messages(
            session, warning=warning, kind=MessageKind.evacuation.value, channels=["sms"], now=now, notice_filter=told
        )
    if out.tasks:
        out.shelters = await shelter_pages.open_links(
            session, warning=warning, zone_ids=sorted({r.zone_id for r in opened}), now=now
        )
    if out.tasks or out.special_people or out.special_places:
        await ledger.append(
            session,
            at=now,
            actor="system:evacuation",
            action="evacuation.opened",
            subject_type="warning",
            subject_id=warning.id,
            details={
                "tasks": out.tasks,
                "keepers": out.keepers,
                "special_people": out.special_people,
                "special_places": out.special_places,
                "messages": out.messages,
                "shelter_links": out.shelters,
            },
        )
    log.info(
        "evacuation_opened",
        warning_id=warning.id,
        tasks=out.tasks,
        keepers=out.keepers,
        special_people=out.special_people,
        special_places=out.special_places,
    )
    return out


async def _open_special(session: AsyncSession, *, warning: EarlyWarning, inside: Any, now: datetime) -> tuple[int, int]:
    counts = []
    for subject, table, who in ((Subject.person, SP, SP.c.helper_id), (Subject.place, SPL, SPL.c.contact_id)):
        floor = await notices.max_id(session)
        src = (
            select(
                await notices.reserved_ids(session, floor=floor, order_by=table.c.id),
                literal(warning.id, Integer),
                literal(subject.value),
                table.c.id,
            )
            .select_from(table.join(R, R.c.code == table.c.region_code).join(P, P.c.id == who))
            .where(
                table.c.active.is_(True),
                P.c.active.is_(True),
                inside,
                _meets(subject, table.c.id, warning),
            )
        )
        # Already notified for this warning: skipped by the unique constraint (see the tasks above).
        n = (
            await session.execute(
                insert(session, SN)
                .from_select(["notice_id", "warning_id", "subject", "subject_id"], src)
                .on_conflict_do_nothing(index_elements=["warning_id", "subject", "subject_id"])
            )
        ).rowcount or 0
        if n:
            await notices.open_reserved(
                session,
                warning=warning,
                reason=NoticeReason.special,
                now=now,
                source=(
                    select(SN.c.notice_id, P.c.id, P.c.role, table.c.region_code)
                    .select_from(SN.join(table, table.c.id == SN.c.subject_id).join(P, P.c.id == who))
                    .where(SN.c.warning_id == warning.id, SN.c.subject == subject.value, SN.c.notice_id > floor)
                ),
            )
        counts.append(n)
    return counts[0], counts[1]


# --- decisions ------------------------------------------------------------------------------------------------


@dataclass
class TaskView:
    task: EvacuationTask
    household: Household
    zone: DangerZone
    warning: EarlyWarning
    zone_path: str
    keeper: Person


async def load_task(
    session: AsyncSession, *, task_id: int | None = None, notice_id: int | None = None, lock: bool = False
) -> TaskView | None:
    q = (
        select(EvacuationTask, Household, DangerZone, EarlyWarning, Region.path, Person)
        .join(Household, Household.id == EvacuationTask.household_id)
        .join(DangerZone, DangerZone.id == EvacuationTask.zone_id)
        .join(EarlyWarning, EarlyWarning.id == EvacuationTask.warning_id)
        .join(Region, Region.code == DangerZone.region_code)
        .join(Person, Person.id == func.coalesce(EvacuationTask.keeper_id, Household.keeper_id))
    )
    q = q.where(EvacuationTask.id == task_id) if task_id is not None else q.where(EvacuationTask.notice_id == notice_id)
    if lock:
        q = q.with_for_update(of=EvacuationTask)
    row = (await session.execute(q)).first()
    return TaskView(*row) if row else None


async def load_keeper_tasks(session: AsyncSession, *, notice_id: int, lock: bool = False) -> list[TaskView]:
    """Every task under a keeper's one notice (the task page lists them all), in the order of the SMS."""
    q = (
        select(EvacuationTask, Household, DangerZone, EarlyWarning, Region.path, Person)
        .join(Household, Household.id == EvacuationTask.household_id)
        .join(DangerZone, DangerZone.id == EvacuationTask.zone_id)
        .join(EarlyWarning, EarlyWarning.id == EvacuationTask.warning_id)
        .join(Region, Region.code == DangerZone.region_code)
        .join(Person, Person.id == func.coalesce(EvacuationTask.keeper_id, Household.keeper_id))
        .where(EvacuationTask.notice_id == notice_id)
        .order_by(EvacuationTask.id)
    )
    if lock:
        q = q.with_for_update(of=EvacuationTask)
    return [TaskView(*row) for row in (await session.execute(q)).all()]


async def get_task(session: AsyncSession, *, task_id: int, scope_path: str, lock: bool = False) -> TaskView:
    view = await load_task(session, task_id=task_id, lock=lock)
    if view is None or not Scope(scope_path).covers(view.zone_path):
        # Outside the caller's scope it does not exist for them.
        raise NotFound(f"evacuation task {task_id} not found", f"转移任务 {task_id} 不存在", field="task_id")
    return view


async def decide(
    session: AsyncSession, *, view: TaskView, data: TaskDecision, actor: str, now: datetime
) -> EvacuationTask:
    """Record what happened to the household; 防回流: a return before 解除转移 is flagged, never hidden."""
    task, household = view.task, view.household
    people = data.people_moved
    shelter_id = None
    if data.status == TaskStatus.moved:
        if data.shelter_id is None:
            raise Invalid("moved needs the shelter", "已转移须选择安置场所", field="shelter_id")
        shelter = await session.get(Shelter, data.shelter_id)
        if shelter is None or not shelter.active:
            raise Invalid(
                f"unknown shelter {data.shelter_id}", f"安置场所 {data.shelter_id} 不存在", field="shelter_id"
            )
        shelter_id = shelter.id
        if not people:
            raise Invalid("moved needs how many people", "已转移须填写转移人数", field="people_moved")
    if data.status == TaskStatus.with_relatives and not people:
        people = household.people
    if people is not None and people > household.people:
        raise Invalid(
            f"the household has {household.people} people", f"该户只有 {household.people} 人", field="people_moved"
        )
    note = (data.note or "").strip() or None
    if data.status == TaskStatus.refused and not note:
        raise Invalid("a refusal needs a note (who refused, what was done)", "拒绝转移须填写情况说明", field="note")
    before = {"status": task.status, "shelter_id": task.shelter_id, "people_moved": task.people_moved}
    task.status = data.status.value
    task.shelter_id = shelter_id
    task.people_moved = people if data.status in (TaskStatus.moved, TaskStatus.with_relatives) else None
    task.note = note
    if data.status != TaskStatus.moved:
        task.arrived_people, task.arrived_at = None, None
    early = data.status == TaskStatus.returned and task.released_at is None
    task.returned_early = task.returned_early or early
    task.updated_at = now
    await session.flush()
    await ledger.append(
        session,
        at=now,
        actor=actor,
        action="evacuation.task_decided",
        subject_type="evacuation_task",
        subject_id=task.id,
        details={
            "warning_id": task.warning_id,
            "household_id": household.id,
            "notice_id": task.notice_id,
            "before": before,
            "status": task.status,
            "shelter_id": shelter_id,
            "people_moved": task.people_moved,
            "note": note,
            "returned_early": early,
        },
    )
    if early:
        log.warning("evacuee_returned_early", task_id=task.id, warning_id=task.warning_id, household_id=household.id)
    return task


async def record_arrival(
    session: AsyncSession, *, shelter_id: int, task_id: int, people: int, actor: str, scope_path: str, now: datetime
) -> EvacuationTask:
    """A shelter's manager saw the household's people arrive."""
    view = await get_task(session, task_id=task_id, scope_path=scope_path, lock=True)
    task = view.task
    if task.status != TaskStatus.moved or task.shelter_id != shelter_id:
        raise Conflict(
            "the household was not reported moved to this shelter",
            "该户未登记转移至本安置场所",
            field="task_id",
            status=task.status,
        )
    if people > view.household.people:
        raise Invalid(
            f"the household has {view.household.people} people", f"该户只有 {view.household.people} 人", field="people"
        )
    task.arrived_people, task.arrived_at, task.updated_at = people, now, now
    await session.flush()
    await ledger.append(
        session,
        at=now,
        actor=actor,
        action="evacuation.arrival",
        subject_type="evacuation_task",
        subject_id=task.id,
        details={"shelter_id": shelter_id, "people": people, "warning_id": task.warning_id},
    )
    return task


# --- 解除转移 -------------------------------------------------------------------------------------------------


@dataclass
class Released:
    release: EvacuationRelease
    tasks: int
    messages: int
    notices_closed: int


async def release(session: AsyncSession, *, warning_id: int, region: Region, actor: str, now: datetime) -> Released:
    """解除转移 for one area: its tasks are released, and each 包户责任人 and shelter manager concerned is told
    (once per person) that people may go home. Lifting the warning alone never does this."""
    warning = (
        await session.execute(select(EarlyWarning).where(EarlyWarning.id == warning_id).with_for_update())
    ).scalar_one_or_none()
    if warning is None:
        raise NotFound(f"warning {warning_id} not found", f"预警 {warning_id} 不存在", field="warning_id")
    zone_in_area = select(Z.c.id).join(R, R.c.code == Z.c.region_code).where(Scope(region.path).predicate(R.c.path))
    which = and_(T.c.warning_id == warning_id, T.c.released_at.is_(None), T.c.zone_id.in_(zone_in_area))
    rows = (await session.execute(select(T.c.id, T.c.notice_id).where(which))).all()
    if not rows:
        raise Conflict(
            "no evacuation of this warning is waiting for release in that area",
            "该区域没有待解除的转移任务",
            field="region_code",
        )
    rel = EvacuationRelease(warning_id=warning_id, region_code=region.code, tasks=len(rows), actor=actor, at=now)
    session.add(rel)
    await session.flush()
    ids = [r.id for r in rows]
    for part in chunks(ids, 1000):
        await session.execute(update(T).where(in_ids(session, T.c.id, part)).values(released_at=now, updated_at=now))
    # A keeper's one notice ends only when every household it lists is released.
    touched = sorted({r.notice_id for r in rows})
    still_out = set()
    for part in chunks(touched, 1000):
        still_out |= set(
            (
                await session.execute(
                    select(T.c.notice_id)
                    .where(in_ids(session, T.c.notice_id, part), T.c.released_at.is_(None))
                    .distinct()
                )
            ).scalars()
        )
    closed = await notices.close_if_open(session, [n for n in touched if n not in still_out], now=now)
    await shelter_pages.expire_released(session, warning_id=warning_id, now=now)
    released = and_(T.c.warning_id == warning_id, T.c.released_at == now, T.c.zone_id.in_(zone_in_area))
    keepers = select(H.c.keeper_id.label("pid")).select_from(T.join(H, H.c.id == T.c.household_id)).where(released)
    managers = (
        select(SH.c.manager_id.label("pid"))
        .select_from(T.join(SH, SH.c.id == T.c.shelter_id))
        .where(released, SH.c.manager_id.is_not(None))
    )
    told = union_all(keepers, managers).subquery()
    key = literal(f"rel{rel.id}:p") + cast(P.c.id, String) + literal(":sms")
    src = select(
        literal(warning_id, Integer),
        literal(warning.revision, Integer),
        literal(MessageKind.evac_release.value),
        literal("sms"),
        P.c.phone,
        literal(region.code),
        literal(LEVEL_RANK[warning.level], Integer),
        literal("queued"),
        literal(0, Integer),
        literal(now, UTCDateTime),
        key,
        literal(now, UTCDateTime),
        literal(now, UTCDateTime),
    ).where(P.c.id.in_(select(told.c.pid)), P.c.active.is_(True), P.c.phone.is_not(None), P.c.phone != "")
    res = await session.execute(
        insert(session, OUTBOX).from_select(
            MESSAGE_COLUMNS,
            src,
        )
    )
    messages = res.rowcount or 0
    await ledger.append(
        session,
        at=now,
        actor=actor,
        action="evacuation.released",
        subject_type="warning",
        subject_id=warning_id,
        details={
            "region_code": region.code,
            "tasks": len(rows),
            "messages": messages,
            "notices_closed": closed,
            "release_id": rel.id,
        },
    )
    log.info("evacuation_released", warning_id=warning_id, region=region.code, tasks=len(rows), messages=messages)
    return Released(release=rel, tasks=len(rows), messages=messages, notices_closed=closed)


async def warning_in_scope(session: AsyncSession, *, warning_id: int, scope_path: str) -> EarlyWarning:
    """The warning, if every region it targets lies in the caller's scope (else it does not exist for them)."""
    warning = await session.get(EarlyWarning, warning_id)
    if warning is None:
        raise NotFound(f"warning {warning_id} not found", f"预警 {warning_id} 不存在", field="warning_id")
    paths = (await session.execute(select(Region.path).where(Region.code.in_(warning.targets)))).scalars().all()
    scope = Scope(scope_path)
    if not any(scope.overlaps(p) for p in paths):
        raise Forbidden("this warning does not reach your scope", "该预警不涉及您的管辖范围", field="warning_id")
    return warning


def status_zh(status: str) -> str:
    return TASK_STATUS_ZH.get(status, status)
