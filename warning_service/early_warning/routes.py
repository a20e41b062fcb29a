"""Warnings: issue, update, lift, read, and CAP 1.2 in and out."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from warning_service.delivery.service import warning_delivery_stats
from warning_service.deps import Approver, DutyOfficer, NowDep, Reader, SessionDep, SettingsDep
from warning_service.early_warning import cap, queries, relay, service, signoff
from warning_service.early_warning.models import (
    IssueResponse,
    WarningCreate,
    WarningIssue,
    WarningLift,
    WarningReject,
    WarningUpdate,
)
from warning_service.early_warning.preview import preview_issue
from warning_service.errors import Conflict, Invalid

router = APIRouter(prefix="/api/v1/warnings", tags=["warnings"])


def _policy(request: Request):
    return request.app.state.runtime.policy


def _summary(w: Any) -> dict[str, Any]:
    return {
        "id": w.id, "identifier": w.identifier, "sender": w.sender, "hazard": w.hazard, "level": w.level,
        "status": w.status, "state": w.state, "title": w.title, "description": w.description,
        "instruction": w.instruction, "issued_at": w.issued_at, "effective_at": w.effective_at,
        "expires_at": w.expires_at, "lifted_at": w.lifted_at, "targets": w.targets, "area_desc": w.area_desc,
        "revision": w.revision, "ack_round": w.ack_round, "reply_code": w.reply_code, "source": w.source,
    }


@router.post("", status_code=201, response_model=IssueResponse)
async def issue(body: WarningIssue, request: Request, response: Response, principal: DutyOfficer,
                session: SessionDep, settings: SettingsDep, now: NowDep,
                idempotency_key: Annotated[str | None, Header(max_length=100)] = None) -> IssueResponse:
    """Issue a warning to every responsible person under the targets (one transaction).

    With an `Idempotency-Key` header, sending the same request again (a double click, a resubmitted form)
    answers 200 with the warning already issued instead of issuing another.
    """
    data = WarningCreate.model_validate(body.model_dump())
    result = await service.issue_once(session, key=idempotency_key, data=data, actor=principal.as_actor(),
                                      policy=_policy(request), settings=settings, now=now)
    if result.replayed:
        response.status_code = 200
    return IssueResponse(id=result.warning.id, identifier=result.warning.identifier,  # type: ignore[arg-type]
                         recipient_count=result.recipient_count, revision=result.warning.revision,
                         state=result.warning.state)


@router.post("/{warning_id}/approve", response_model=IssueResponse)
async def approve(warning_id: int, principal: Approver, session: SessionDep, now: NowDep) -> IssueResponse:
    """批准签发 (role leader, not the submitter, every target in scope): send a warning held for sign-off now.

    Approving twice, or after a rejection, is a 409 and sends nothing more."""
    result = await signoff.approve(session, warning_id=warning_id, actor=principal.as_actor(), now=now)
    return IssueResponse(id=result.warning.id, identifier=result.warning.identifier,  # type: ignore[arg-type]
                         recipient_count=result.recipient_count, revision=result.warning.revision,
                         state=result.warning.state)


@router.post("/{warning_id}/reject")
async def reject(warning_id: int, body: WarningReject, principal: Approver, session: SessionDep,
                 now: NowDep) -> dict[str, Any]:
    """退回 with a reason (role leader, not the submitter): the warning is never sent."""
    w = await signoff.reject(session, warning_id=warning_id, reason=body.reason, actor=principal.as_actor(), now=now)
    return {"id": w.id, "state": w.state, "reason": body.reason}


@router.post("/preview")
async def preview(body: WarningCreate, request: Request, principal: DutyOfficer, session: SessionDep,
                  settings: SettingsDep, now: NowDep) -> dict[str, Any]:
    """Dry run of an issue: the exact recipient count (by role and by town) and the rendered texts. Writes nothing."""
    p = await preview_issue(session, data=body, actor=principal.as_actor(), policy=_policy(request),
                            settings=settings, now=now)
    return asdict(p)


@router.post("/cap", status_code=201)
async def receive_cap(request: Request, response: Response, principal: DutyOfficer, session: SessionDep,
                      settings: SettingsDep, now: NowDep) -> dict[str, Any]:
    """Relay a CAP 1.2 alert from an upstream platform (Alert issues, Update updates, Cancel lifts)."""
    ctype = request.headers.get("content-type", "")
    if "xml" not in ctype:
        raise Invalid("send the CAP alert as application/xml", "请以 application/xml 提交 CAP 消息",
                      field="content-type")
    result = await relay.receive_cap(session, raw=await request.body(), actor=principal.as_actor(),
                                     policy=_policy(request), settings=settings, now=now)
    if result.action != "issued":
        response.status_code = 200
    return {"id": result.warning.id, "identifier": result.warning.identifier, "action": result.action,
            "recipient_count": result.recipient_count}


@router.get("")
async def list_warnings(principal: Reader, session: SessionDep, status: str | None = None,
                        hazard: str | None = None, level: str | None = None, state: str | None = None,
                        region: str | None = None, issued_from: datetime | None = Query(None, alias="from"),
                        issued_to: datetime | None = Query(None, alias="to"), offset: int = Query(0, ge=0),
                        limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    """Warnings visible in the caller's scope, newest first."""
    total, rows = await queries.list_warnings(
        session, actor=principal.as_actor(), status=status, hazard=hazard, level=level, state=state, region=region,
        issued_from=issued_from, issued_to=issued_to, offset=offset, limit=limit)
    return {"total": total, "items": [_summary(w) for w in rows]}


@router.get("/{warning_id}")
async def get_warning(warning_id: int, principal: Reader, session: SessionDep, settings: SettingsDep
                      ) -> dict[str, Any]:
    """One warning with its notice counts by state, delivery figures by channel and CAP history."""
    actor = principal.as_actor()
    w = await queries.get_visible(session, warning_id=warning_id, actor=actor)
    body = _summary(w)
    body["policy"] = w.policy
    body["notices"] = await queries.notice_counts(session, warning_id=w.id, actor=actor)  # type: ignore[arg-type]
    body["recipient_count"] = sum(body["notices"].get("primary", {}).values())
    body["revisions"] = [{"revision": r.revision, "msg_type": r.msg_type, "identifier": r.identifier,
                          "sent_at": r.sent_at, "level": r.level, "references": r.references}
                         for r in await queries.revisions(session, warning_id=w.id)]  # type: ignore[arg-type]
    body["delivery"] = await warning_delivery_stats(session, warning_id=w.id, settings=settings)
    so = await signoff.signoff_of(session, warning_id=w.id)  # type: ignore[arg-type]
    body["signoff"] = None if so is None else {
        "submitted_by": so.submitter, "submitted_at": so.submitted_at, "decision": so.decision,
        "decided_by": so.decider, "decided_at": so.decided_at, "reason": so.reason}
    return body


@router.get("/{warning_id}/notices")
async def get_notices(warning_id: int, principal: Reader, session: SessionDep, state: str | None = None,
                      region: str | None = None, reason: str | None = None, offset: int = Query(0, ge=0),
                      limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """The warning's notices (叫应 records) in the caller's scope, paged."""
    actor = principal.as_actor()
    await queries.get_visible(session, warning_id=warning_id, actor=actor)
    total, items = await queries.list_notices(session, warning_id=warning_id, actor=actor, state=state,
                                              region=region, reason=reason, offset=offset, limit=limit)
    return {"total": total, "offset": offset, "limit": limit, "items": items}


@router.post("/{warning_id}/update")
async def update(warning_id: int, body: WarningUpdate, request: Request, principal: DutyOfficer,
                 session: SessionDep, settings: SettingsDep, now: NowDep) -> dict[str, Any]:
    """更新: change level, text or targets; an upgrade demands a fresh acknowledgment."""
    r = await service.update_warning(session, warning_id=warning_id, data=body, actor=principal.as_actor(),
                                     policy=_policy(request), settings=settings, now=now)
    return {"id": r.warning.id, "revision": r.warning.revision, "level": r.warning.level, "upgraded": r.upgraded,
            "new_recipients": r.new_recipients, "messages_queued": r.messages_queued}


@router.post("/{warning_id}/lift")
async def lift(warning_id: int, principal: DutyOfficer, session: SessionDep, now: NowDep,
               body: WarningLift | None = None) -> dict[str, Any]:
    """解除 with its reason (required): stop all calling and tell everyone already reached why."""
    w = await service.lift_warning(session, warning_id=warning_id, data=body or WarningLift(),
                                   actor=principal.as_actor(), now=now)
    return {"id": w.id, "state": w.state, "revision": w.revision, "lifted_at": w.lifted_at}


@router.get("/{warning_id}/cap", response_class=Response)
async def get_cap(warning_id: int, principal: Reader, session: SessionDep,
                  revision: int | None = Query(None, ge=1)) -> Response:
    """The warning as an OASIS CAP 1.2 alert (latest message, or a given revision)."""
    w = await queries.get_visible(session, warning_id=warning_id, actor=principal.as_actor())
    revs = await queries.revisions(session, warning_id=w.id)  # type: ignore[arg-type]
    if not revs:
        raise Conflict(f"warning is {w.state}: it was never sent, so it has no CAP message",
                       "该预警尚未签发(或已退回),没有 CAP 消息", field="state")
    chosen = revs[-1] if revision is None else next((r for r in revs if r.revision == revision), None)
    if chosen is None:
        raise Invalid(f"no revision {revision}", f"没有第 {revision} 版", field="revision")
    earlier = [service.cap_reference(w.sender_code, r.identifier, r.sent_at) for r in revs
               if r.revision < chosen.revision]
    so = await signoff.signoff_of(session, warning_id=w.id)  # type: ignore[arg-type]
    note = so.cap_note if so is not None and so.decision == "approved" else None
    xml = cap.to_cap(w, chosen, references=earlier, geocodes=list(chosen.targets), note=note)
    return Response(content=xml, media_type="application/cap+xml")
