"""`/api/v1/notices/{id}…`: a notice's answers, feedback and delivery log, and a proxy answer (代确认).

Every route takes its notice through one dependency, which refuses a notice outside the caller's scope
exactly as it refuses one that does not exist (404), so ids of other counties' notices reveal nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, field_validator
from pydantic import Field as PField
from sqlalchemy import select

from warning_service.acknowledgment import feedback
from warning_service.acknowledgment.feedback import FeedbackIn
from warning_service.acknowledgment.models import Acknowledgment
from warning_service.delivery import service as delivery
from warning_service.delivery.service import NoticeDeliveryLog
from warning_service.deps import NowDep, Principal, SessionDep, require_role
from warning_service.errors import NotFound
from warning_service.notice import answer
from warning_service.notice.models import Notice
from warning_service.region.models import Region

router = APIRouter(prefix="/api/v1/notices", tags=["notices"])


def notice_in_scope(*roles: str) -> Callable[..., Awaitable[Notice]]:
    """Dependency: the path's notice, for a caller holding one of `roles` whose scope covers it."""

    role = Depends(require_role(*roles))

    async def load(notice_id: int, session: SessionDep, principal: Principal = role) -> Notice:
        row = (await session.execute(select(Notice, Region.path).join(Region, Region.code == Notice.region_code)
                                     .where(Notice.id == notice_id))).first()
        if row is None or not principal.covers_path(row.path):
            raise NotFound(f"notice {notice_id} not found", f"通知 {notice_id} 不存在", field="notice_id")
        return row.Notice

    return load


OfficersNotice = Annotated[Notice, Depends(notice_in_scope("duty_officer"))]
ReadersNotice = Annotated[Notice, Depends(notice_in_scope("duty_officer", "auditor"))]
Officer = Annotated[Principal, Depends(require_role("duty_officer"))]


class ProxyAck(BaseModel):
    """How the duty officer obtained the answer (电话/上门/喇叭/其他) and what was said.

    The note is required whatever the method: a proxy answer stands in for the person's own, and an
    after-action review must be able to tell who was reached, when and how ("19:42 电话联系本人,已到岗")."""

    method: Literal["phone", "visit", "loudspeaker", "other"]
    note: str = PField(max_length=1000)

    @field_validator("note")
    @classmethod
    def _note_said(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("describe how the answer was obtained (说明必填:何时、如何联系到本人)")
        return v.strip()


def client_ip(request: Request) -> str:
    """The caller's address (uvicorn's --proxy-headers puts the real one here behind a proxy)."""
    return request.client.host if request.client else "unknown"


@router.post("/{notice_id}/acknowledge")
async def proxy_acknowledge(notice: OfficersNotice, body: ProxyAck, request: Request, principal: Officer,
                            session: SessionDep, now: NowDep) -> dict[str, Any]:
    """Record an answer obtained by phone, visit or loudspeaker on the person's behalf (path 'proxy')."""
    result = await answer.acknowledge(
        session, notice_id=notice.id, path="proxy", now=now, source=client_ip(request),
        actor_user_id=principal.user.id, proxy_method=body.method, note=(body.note or "").strip() or None,
        actor=principal.actor)
    return {"notice_id": result.notice_id, "status": result.status, "round": result.round,
            "acknowledged_at": result.acknowledged_at, "late": result.late, "path": result.path}


@router.post("/{notice_id}/feedback")
async def proxy_feedback(notice: OfficersNotice, body: FeedbackIn, request: Request, principal: Officer,
                         session: SessionDep, now: NowDep) -> dict[str, Any]:
    """Record 响应反馈 obtained on the person's behalf (after the notice was acknowledged)."""
    saved = await feedback.record_feedback(session, notice_id=notice.id, data=body, now=now,
                                          actor=principal.actor, source=client_ip(request))
    return {"notice_id": notice.id, "feedback": feedback.feedback_dict(saved)}


@router.get("/{notice_id}/acknowledgments")
async def list_acknowledgments(notice: ReadersNotice, session: SessionDep) -> dict[str, Any]:
    """Every round's acknowledgment of the notice, and its feedback."""
    rows = (await session.execute(select(Acknowledgment).where(Acknowledgment.notice_id == notice.id)
                                  .order_by(Acknowledgment.round))).scalars().all()
    return {"notice_id": notice.id,
            "items": [{"round": a.round, "path": a.path, "acknowledged_at": a.acknowledged_at, "late": a.late,
                       "raw_input": a.raw_input, "source": a.source, "proxy_method": a.proxy_method,
                       "note": a.note, "actor_user_id": a.actor_user_id} for a in rows],
            "feedback": feedback.feedback_dict(await feedback.get_feedback(session, notice.id))}


@router.get("/{notice_id}/attempts", response_model=NoticeDeliveryLog)
async def notice_attempts(notice: ReadersNotice, session: SessionDep) -> NoticeDeliveryLog:
    """Every message and delivery attempt for one notice (叫应记录的送达日志)."""
    return await delivery.notice_delivery_log(session, notice=notice)
