"""Twilio's status callbacks (a notice's delivery log is served under notice/routes.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from warning_service.delivery import push, service
from warning_service.delivery.twilio_signature import verified_twilio_form
from warning_service.deps import NowDep, SessionDep

webhook_router = APIRouter(prefix="/webhooks/twilio", tags=["webhooks"])
push_router = APIRouter(prefix="/webhooks", tags=["webhooks"])
AliyunPush = Annotated[list[dict[str, Any]], Depends(push.verified_push("aliyun"))]
TencentPush = Annotated[list[dict[str, Any]], Depends(push.verified_push("tencent"))]
# What each platform expects back once a push is taken (anything else makes it push again).
ALIYUN_OK = {"code": 0, "msg": "成功"}
TENCENT_OK = {"result": 0, "errmsg": "OK"}


@webhook_router.post("/status", include_in_schema=False)
async def twilio_status(request: Request, form: Annotated[dict[str, str], Depends(verified_twilio_form)],
                        session: SessionDep, now: NowDep) -> Response:
    """Twilio SMS / call status callback (signature verified); always 200 once authentic."""
    await service.apply_receipt(session, form=form, outbox_hint=request.query_params.get("o"), now=now)
    return Response(status_code=200)


@push_router.post("/aliyun/sms/report", include_in_schema=False)
async def aliyun_sms_report(items: AliyunPush, session: SessionDep, now: NowDep) -> JSONResponse:
    """Aliyun SmsReport push (token verified): delivery receipts into the same path as Twilio's."""
    await push.apply_aliyun_reports(session, items=push.parse(push.AliyunReport, items), now=now)
    return JSONResponse(ALIYUN_OK)


@push_router.post("/tencent/sms/report", include_in_schema=False)
async def tencent_sms_report(items: TencentPush, session: SessionDep, now: NowDep) -> JSONResponse:
    """Tencent Cloud SMS status callback (token verified): delivery receipts."""
    await push.apply_tencent_reports(session, items=push.parse(push.TencentReport, items), now=now)
    return JSONResponse(TENCENT_OK)
