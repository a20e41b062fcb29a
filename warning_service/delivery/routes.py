"""Twilio's status callbacks (a notice's delivery log is served under notice/routes.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from warning_service.delivery import service
from warning_service.delivery.twilio_signature import verified_twilio_form
from warning_service.deps import NowDep, SessionDep

webhook_router = APIRouter(prefix="/webhooks/twilio", tags=["webhooks"])


@webhook_router.post("/status", include_in_schema=False)
async def twilio_status(request: Request, form: Annotated[dict[str, str], Depends(verified_twilio_form)],
                        session: SessionDep, now: NowDep) -> Response:
    """Twilio SMS / call status callback (signature verified); always 200 once authentic."""
    await service.apply_receipt(session, form=form, outbox_hint=request.query_params.get("o"), now=now)
    return Response(status_code=200)
