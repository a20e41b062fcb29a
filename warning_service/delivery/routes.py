"""Delivery log API and Twilio's status callbacks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from warning_service.delivery import service
from warning_service.delivery.service import NoticeDeliveryLog
from warning_service.delivery.twilio_signature import verified_twilio_form
from warning_service.deps import NowDep, Reader, SessionDep

router = APIRouter(prefix="/api/v1", tags=["delivery"])
webhook_router = APIRouter(prefix="/webhooks/twilio", tags=["webhooks"])


@router.get("/notices/{notice_id}/attempts", response_model=NoticeDeliveryLog)
async def notice_attempts(notice_id: int, principal: Reader, session: SessionDep) -> NoticeDeliveryLog:
    """Every message and delivery attempt for one notice (叫应记录的送达日志)."""
    return await service.notice_delivery_log(session, notice_id=notice_id, principal=principal)


@webhook_router.post("/status", include_in_schema=False)
async def twilio_status(request: Request, form: Annotated[dict[str, str], Depends(verified_twilio_form)],
                        session: SessionDep, now: NowDep) -> Response:
    """Twilio SMS / call status callback (signature verified); always 200 once authentic."""
    await service.apply_receipt(session, form=form, outbox_hint=request.query_params.get("o"), now=now)
    return Response(status_code=200)
