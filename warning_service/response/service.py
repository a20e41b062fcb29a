"""Starting, adjusting and ending an emergency response, its 到岗 demands, and the 到岗率 the board shows.

Every function works in the caller's transaction and flushes; demands are notices opened through
notice/service.py and their first message is queued in the same transaction (an outbox), so a response
that is rolled back demands nothing and one that is committed always does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service import labels
from warning_service.dialect import is_postgresql
from warning_service.early_warning.models import EarlyWarning, WarningState
from warning_service.early_warning.policy import PolicyBook
from warning_service.errors import Conflict, Invalid, NotFound
from warning_service.escalation import actions
from warning_service.escalation.targets import Responsible
from warning_service.ledger import service as ledger
from warning_service.notice import service as notices
from warning_service.notice.models import OPEN_STATES, Notice, NoticeState
from warning_service.person.models import Person
from warning_service.region import service as regions
from warning_service.region.models import Region
from warning_service.region.scope import Scope
from warning_service.response.models import (
    RESPONSE_RANK,
    EmergencyResponse,
    ResponseAction,
    ResponseAdjust,
    ResponseChange,
    ResponseDemand,
    ResponseEnd,
    ResponseLevel,
    ResponseStart,
    ResponseState,
    ResponseWarning,
)

LEDGER_ACTION = {ResponseAction.start: "response.started", ResponseAction.raise_: "response.raised",
                 ResponseAction.lower: "response.lowered", ResponseAction.end: "response.ended"}


def _snapshot(policy: PolicyBook, level: str) -> dict[str, Any]:
    rp = policy.response(level)
    return {"level": level, "roles": list(rp.roles), "ack_deadline": rp.ack_deadline, "chase": rp.chase(),
            "warnings": dict(rp.warnings)}


async def get(session: AsyncSession, *, response_id: int, lock: bool = False) -> EmergencyResponse:
    q = select(EmergencyResponse).where(EmergencyResponse.id == response_id)
    if lock and is_postgresql(session):
        q = q.with_for_update()  # two adjustments of one response are made one after the other
    resp = (await session.execute(q)).scalars().first()
    if resp is None:
        raise NotFound(f"response {response_id} not found", f"应急响应 {response_id} 不存在", field="response_id")
    return resp


async def _active_warning(session: AsyncSession, warning_id: int) -> EarlyWarning:
    w = await session.get(EarlyWarning, warning_id)
    if w is None:
        raise NotFound(f"warning {warning_id} not found", f"预警 {warning_id} 不存在", field="warning_id")
    if w.state != WarningState.active:
        raise Invalid("the warning is no longer in force", "该预警已解除或失效", field="warning_id")
    return w


async def start(session: AsyncSession, *, data: ResponseStart, actor: str, policy: PolicyBook,
                now: datetime) -> tuple[EmergencyResponse, int]:
    """Start a response for a region and hazard from the warning that triggered it; returns it and the
    number of 到岗 demands sent."""
    region = await regions.get(session, code=data.region_code)
    warning = await _active_warning(session, data.warning_id)
    running = (await session.execute(select(EmergencyResponse.id).where(
        EmergencyResponse.region_code == region.code, EmergencyResponse.hazard == data.hazard,
        EmergencyResponse.state == ResponseState.active))).scalar()
    if running is not None:
        raise Conflict("a response for this region and hazard is in force; adjust it instead",
                       "该区划该灾种已有应急响应,请调整其级别", field="region_code", existing_id=running)
    resp = EmergencyResponse(region_code=region.code, hazard=data.hazard, level=data.level.value,
                             state=ResponseState.active.value, warning_id=warning.id,  # type: ignore[arg-type]
                             exercise=warning.status == "exercise", decided_by=data.decided_by,
                             policy=_snapshot(policy, data.level.value), started_at=now, updated_at=now)
    session.add(resp)
    await session.flush()
    session.add(ResponseWarning(response_id=resp.id, warning_id=warning.id, linked_at=now))  # type: ignore[arg-type]
    sent = await _demand(session, resp, region_path=region.path, now=now)
    await _record(session, resp, action=ResponseAction.start, from_level=None, to_level=resp.level,
                  decided_by=data.decided_by, actor=actor, reason=data.reason, demands=sent, now=now)
    return resp, sent


async def adjust(session: AsyncSession, *, response_id: int, data: ResponseAdjust, actor: str, policy: PolicyBook,
                 now: datetime) -> tuple[EmergencyResponse, int]:
    """Raise or lower the level. Raising demands 到岗 of the roles the new level adds; lowering closes the
    still-open demands of roles it no longer names."""
    resp = await get(session, response_id=response_id, lock=True)
    if resp.state != ResponseState.active:
        raise Invalid("the response has ended", "该应急响应已终止", field="response_id")
    old, new = ResponseLevel(resp.level), data.level
    if old == new:
        raise Invalid(f"the response is already at level {new.value}", f"应急响应已是{labels.RESPONSE_LEVEL[new]}",
                      field="level")
    raising = RESPONSE_RANK[new] > RESPONSE_RANK[old]
    resp.level, resp.policy, resp.decided_by, resp.updated_at = new.value, _snapshot(policy, new.value), \
        data.decided_by, now
    await session.flush()
    region = await regions.get(session, code=resp.region_code)
    if raising:
        sent = await _demand(session, resp, region_path=region.path, now=now)
    else:
        sent = 0
        stale = (await session.execute(
            select(ResponseDemand.notice_id).join(Notice, Notice.id == ResponseDemand.notice_id)
            .where(ResponseDemand.response_id == resp.id, Notice.role.not_in(resp.policy["roles"]),
                   Notice.state.in_(OPEN_STATES)))).scalars().all()
        await notices.close_still_open(session, list(stale), now=now)
    await _record(session, resp, action=ResponseAction.raise_ if raising else ResponseAction.lower,
                  from_level=old.value, to_level=new.value, decided_by=data.decided_by, actor=actor,
                  reason=data.reason, demands=sent, now=now)
    return resp, sent


async def end(session: AsyncSession, *, response_id: int, data: ResponseEnd, actor: str,
              now: datetime) -> EmergencyResponse:
    """End the response; demands still unanswered are closed and no longer chased."""
    resp = await get(session, response_id=response_id, lock=True)
    if resp.state != ResponseState.active:
        raise Invalid("the response has already ended", "该应急响应已终止", field="response_id")
    resp.state, resp.ended_at, resp.updated_at = ResponseState.ended.value, now, now
    await session.flush()
    ids = (await session.execute(select(ResponseDemand.notice_id).where(
        ResponseDemand.response_id == resp.id))).scalars().all()
    await notices.close_still_open(session, list(ids), now=now)
    await _record(session, resp, action=ResponseAction.end, from_level=resp.level, to_level=None,
                  decided_by=data.decided_by, actor=actor, reason=data.reason, demands=0, now=now)
    return resp


async def link_warning(session: AsyncSession, *, response_id: int, warning_id: int, actor: str,
                       now: datetime) -> bool:
    """Record that a warning was issued under (or belongs to) this response; False if already linked."""
    resp = await get(session, response_id=response_id)
    if await session.get(EarlyWarning, warning_id) is None:
        raise NotFound(f"warning {warning_id} not found", f"预警 {warning_id} 不存在", field="warning_id")
    if await session.get(ResponseWarning, (response_id, warning_id)) is not None:
        return False
    session.add(ResponseWarning(response_id=resp.id, warning_id=warning_id, linked_at=now))  # type: ignore[arg-type]
    await session.flush()
    await ledger.append(session, at=now, actor=actor, action="response.warning_linked", subject_type="response",
                        subject_id=resp.id, details={"warning_id": warning_id})
    return True


async def _demand(session: AsyncSession, resp: EmergencyResponse, *, region_path: str, now: datetime) -> int:
    """到岗 demands to the active persons in the response's area holding a role its level names, except
    those already asked by this response; the first SMS is queued with them."""
    asked = select(ResponseDemand.person_id).where(ResponseDemand.response_id == resp.id)
    rows = (await session.execute(
        select(Person.id, Person.role, Person.region_code).join(Region, Region.code == Person.region_code)
        .where(Person.active.is_(True), Person.role.in_(resp.policy["roles"]), Scope(region_path).predicate(
            Region.path), Person.id.not_in(asked)).order_by(Person.id))).all()
    if not rows:
        return 0
    persons = [Responsible(pid, role, code) for pid, role, code in rows]
    deadline = now + timedelta(seconds=float(resp.policy["ack_deadline"]))
    opened = await notices.open_attendance(session, warning_id=resp.warning_id, persons=persons,
                                           deadline=deadline, now=now)
    await session.execute(ResponseDemand.__table__.insert(), [  # type: ignore[attr-defined]
        {"response_id": resp.id, "notice_id": nid, "person_id": pid, "level": resp.level, "created_at": now}
        for nid, pid in opened])
    await actions.queue_messages(session, notice_ids=[nid for nid, _ in opened], channel="sms", recall=False, now=now)
    return len(opened)


async def _record(session: AsyncSession, resp: EmergencyResponse, *, action: ResponseAction, from_level: str | None,
                  to_level: str | None, decided_by: str, actor: str, reason: str | None, demands: int,
                  now: datetime) -> None:
    session.add(ResponseChange(response_id=resp.id, at=now, action=action.value, from_level=from_level,  # type: ignore[arg-type]
                               to_level=to_level, decided_by=decided_by, actor=actor, reason=reason, demands=demands))
    await session.flush()
    await ledger.append(session, at=now, actor=actor, action=LEDGER_ACTION[action], subject_type="response",
                        subject_id=resp.id, details={
                            "region_code": resp.region_code, "hazard": resp.hazard, "from_level": from_level,
                            "to_level": to_level, "decided_by": decided_by, "reason": reason,
                            "warning_id": resp.warning_id, "demands": demands})


# --- the board -------------------------------------------------------------------------------------------------

async def attendance(session: AsyncSession, response_ids: Sequence[int], *, now: datetime) -> dict[int, dict[str, Any]]:
    """到岗率 per response: demanded, confirmed (on time and late), still open, timed out; and by role."""
    out: dict[int, dict[str, Any]] = {rid: _empty() for rid in response_ids}
    if not response_ids:
        return out
    late = Notice.acknowledged_at > Notice.deadline
    rows = (await session.execute(
        select(ResponseDemand.response_id, Notice.role, Notice.state, func.count(), func.count().filter(late))
        .join(Notice, Notice.id == ResponseDemand.notice_id)
        .where(ResponseDemand.response_id.in_(list(response_ids)))
        .group_by(ResponseDemand.response_id, Notice.role, Notice.state))).all()
    for rid, role, state, n, n_late in rows:
        for bucket in (out[rid], out[rid]["by_role"].setdefault(role, {**_empty(), "by_role": None})):
            bucket["demanded"] += n
            if state == NoticeState.acknowledged:
                bucket["confirmed"] += n
                bucket["late"] += n_late
            elif state in OPEN_STATES:
                bucket["open"] += n
            elif state == NoticeState.timed_out:
                bucket["timed_out"] += n
            else:
                bucket["closed"] += n
    for v in out.values():
        for bucket in (v, *v["by_role"].values()):
            bucket["rate"] = round(bucket["confirmed"] / bucket["demanded"], 4) if bucket["demanded"] else None
        v["by_role"] = {r: {**b, "role_zh": labels.zh(labels.ROLE, r)} for r, b in sorted(v["by_role"].items())}
    return out


def _empty() -> dict[str, Any]:
    return {"demanded": 0, "confirmed": 0, "late": 0, "open": 0, "timed_out": 0, "closed": 0, "rate": None,
            "by_role": {}}


async def list_responses(session: AsyncSession, *, scope_path: str, active_only: bool = False,
                         limit: int = 200) -> list[EmergencyResponse]:
    q = (select(EmergencyResponse).join(Region, Region.code == EmergencyResponse.region_code)
         .where(Scope(scope_path).predicate(Region.path)))
    if active_only:
        q = q.where(EmergencyResponse.state == ResponseState.active)
    return list((await session.execute(q.order_by(EmergencyResponse.started_at.desc()).limit(limit))).scalars())


async def changes(session: AsyncSession, *, response_ids: Sequence[int]) -> list[ResponseChange]:
    return list((await session.execute(select(ResponseChange).where(ResponseChange.response_id.in_(
        list(response_ids))).order_by(ResponseChange.at, ResponseChange.id))).scalars())


async def in_force(session: AsyncSession, *, paths: Sequence[str], hazard: str) -> list[EmergencyResponse]:
    """Active responses for this hazard whose region contains, or lies within, any of the subtrees."""
    codes = sorted({c for p in paths for c in regions.ancestor_codes(p)})
    inside = select(Region.code).where(Scope.any_of(Region.path, paths))
    return list((await session.execute(select(EmergencyResponse).where(
        EmergencyResponse.hazard == hazard, EmergencyResponse.state == ResponseState.active,
        EmergencyResponse.region_code.in_(codes) | EmergencyResponse.region_code.in_(inside))
        .order_by(EmergencyResponse.id))).scalars())


def highest(responses: Sequence[EmergencyResponse]) -> str | None:
    """The most severe level among them (None for none)."""
    return max((r.level for r in responses), key=lambda lv: RESPONSE_RANK[ResponseLevel(lv)], default=None)


async def link_issued(session: AsyncSession, *, responses: Sequence[EmergencyResponse], warning_id: int,
                      now: datetime) -> None:
    """A warning issued under these responses belongs to them (复盘, 通报)."""
    for r in responses:
        session.add(ResponseWarning(response_id=r.id, warning_id=warning_id, linked_at=now))  # type: ignore[arg-type]
    await session.flush()


