"""Receipts and replies pushed by Aliyun (SMS, voice) and Tencent Cloud SMS: verification and their shapes.

Neither platform signs its HTTP push (Aliyun's SmsReport / SmsUp, Tencent's status and reply callbacks are
plain JSON arrays POSTed to the URL set in the console). What authenticates a push here is a long random token
in that URL (`…/report?token=…`), set in ALIYUN_PUSH_TOKEN / TENCENT_PUSH_TOKEN and compared in constant time;
the URL must be HTTPS so the token does not travel in clear. Without a token the endpoints refuse everything:
an unverified receipt or reply could be forged by anyone who knows the path.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from channels.sms_aliyun import provider_id as aliyun_provider_id
from warning_service.config import Settings
from warning_service.delivery.service import record_receipt
from warning_service.errors import Forbidden, Invalid
from warning_service.logging import get_logger

log = get_logger(__name__)
Provider = Literal["aliyun", "tencent"]
MAX_ITEMS = 5000  # one push carries at most a few hundred; more is not a platform talking


def push_token(settings: Settings, provider: Provider) -> str | None:
    secret = settings.aliyun_push_token if provider == "aliyun" else settings.tencent_push_token
    return secret.get_secret_value() if secret else None


def verified_push(provider: Provider) -> Callable[[Request], Awaitable[list[dict[str, Any]]]]:
    """FastAPI dependency: the pushed JSON array (a lone object counts as one), once the token holds."""

    async def dependency(request: Request) -> list[dict[str, Any]]:
        settings: Settings = request.app.state.settings
        expected = push_token(settings, provider)
        setting = f"{provider.upper()}_PUSH_TOKEN"
        if not expected:
            log.warning("push_refused", provider=provider, reason="no token configured", path=request.url.path)
            raise Forbidden(f"{provider} pushes are disabled: {setting} is not set",
                            f"未配置 {setting},拒绝{_ZH[provider]}推送")
        given = request.query_params.get("token", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            log.warning("push_refused", provider=provider, reason="bad token", path=request.url.path)
            raise Forbidden("invalid push token", "推送令牌无效")
        try:
            data = await request.json()
        except ValueError:
            raise Invalid("the push body is not JSON", "推送内容不是 JSON", field="body") from None
        items = data if isinstance(data, list) else [data]
        if len(items) > MAX_ITEMS or not all(isinstance(i, dict) for i in items):
            raise Invalid("the push body must be a JSON array of objects", "推送内容须为 JSON 对象数组",
                          field="body")
        return items

    return dependency


_ZH = {"aliyun": "阿里云", "tencent": "腾讯云"}


def parse(model: type[BaseModel], items: list[dict[str, Any]]) -> list[Any]:
    """All items or none: one malformed item refuses the push (the platform retries it), nothing applied."""
    try:
        return TypeAdapter(list[model]).validate_python(items)  # type: ignore[valid-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Invalid(f"push item {where}: {first['msg']}", f"推送内容第 {where} 项无效:{first['msg']}",
                      field=where) from None


# --- Aliyun ------------------------------------------------------------------------------------------------

class AliyunReport(BaseModel):
    """One SmsReport item (Aliyun's field names)."""

    model_config = ConfigDict(extra="ignore")
    phone_number: str = Field(min_length=5, max_length=20)
    success: bool
    biz_id: str = Field(min_length=1, max_length=50)
    err_code: str = Field("", max_length=64)
    err_msg: str = ""
    out_id: str | None = None
    report_time: str | None = None


class AliyunUplink(BaseModel):
    """One SmsUp item: a reply to our 106 number."""

    model_config = ConfigDict(extra="ignore")
    phone_number: str = Field(min_length=5, max_length=20)
    content: str = Field(max_length=1000)
    send_time: str | None = None
    sign_name: str | None = None
    dest_code: str | None = None
    sequence_id: int | str | None = None


async def apply_aliyun_reports(session: AsyncSession, *, items: list[AliyunReport], now: datetime) -> list[str]:
    """Each report through the one receipt path; `DELIVERED` is delivered, anything else undelivered."""
    out = []
    for r in items:
        status = "delivered" if r.success else "undelivered"
        out.append(await record_receipt(
            session, provider_id=aliyun_provider_id(r.biz_id, r.phone_number), status=status,
            raw=r.err_code or status, error_code=None if r.success else f"aliyun_{r.err_code or 'failed'}",
            now=now))
    return out


# Aliyun 语音服务: VoiceReport (a call's end) and VoiceCallReport (its steps; 300000 carries a key press) come
# in one shape. Final codes (2xxxxx) are receipts in our words; the rest changes nothing here.
VOICE_DELIVERED = {"200000", "200001", "200008"}  # heard to the end, hung up early, no key before the timeout
VOICE_FAILED = {"200004"}  # the number does not exist
# Everything else final (200002 busy, 200003 not answered, 200005 refused, 200007 out of reach, 200010 off,
# 200011 suspended …) is undelivered: nobody heard it, the escalation calls again.


class AliyunVoiceReport(BaseModel):
    """One VoiceReport or VoiceCallReport item (Aliyun's field names)."""

    model_config = ConfigDict(extra="ignore")
    call_id: str = Field(min_length=1, max_length=64)
    status_code: str = Field(min_length=1, max_length=16)
    status_msg: str = Field("", max_length=200)
    out_id: str | None = Field(None, max_length=32)
    dtmf: str | None = Field(None, max_length=64)
    duration: int | str | None = None
    callee: str | None = Field(None, max_length=32)
    start_time: str | None = None
    end_time: str | None = None
    status_time: str | None = None


def voice_receipt_status(status_code: str) -> str | None:
    """Our status for a final call status code; None for a step of the call (ringing, key press …)."""
    if not status_code.startswith("2"):
        return None
    if status_code in VOICE_DELIVERED:
        return "delivered"
    return "failed" if status_code in VOICE_FAILED else "undelivered"


async def apply_aliyun_voice_reports(session: AsyncSession, *, items: list[AliyunVoiceReport], now: datetime
                                    ) -> list[str]:
    """Each final call status through the one receipt path (the CallId is the message's provider id)."""
    out = []
    for r in items:
        status = voice_receipt_status(r.status_code)
        if status is None:
            out.append("step")
            continue
        out.append(await record_receipt(
            session, provider_id=r.call_id, status=status, raw=r.status_code,
            error_code=None if status == "delivered" else f"aliyun_voice_{r.status_code}",
            outbox_hint=r.out_id, now=now))
    return out


# --- Tencent -----------------------------------------------------------------------------------------------

class TencentReport(BaseModel):
    """One item of Tencent's 短信下发状态回调."""

    model_config = ConfigDict(extra="ignore")
    mobile: str = Field(min_length=5, max_length=20)
    nationcode: str = "86"
    report_status: Literal["SUCCESS", "FAIL"]
    errmsg: str = ""
    description: str = ""
    sid: str = Field(min_length=1, max_length=64)
    user_receive_time: str | None = None


class TencentReply(BaseModel):
    """Tencent's 短信回复回调."""

    model_config = ConfigDict(extra="ignore")
    mobile: str = Field(min_length=5, max_length=20)
    nationcode: str = "86"
    text: str = Field(max_length=1000)
    sign: str | None = None
    extend: str | None = None
    time: int | None = None


async def apply_tencent_reports(session: AsyncSession, *, items: list[TencentReport], now: datetime
                                ) -> list[str]:
    out = []
    for r in items:
        ok = r.report_status == "SUCCESS"
        out.append(await record_receipt(
            session, provider_id=r.sid, status="delivered" if ok else "undelivered", raw=r.errmsg or r.report_status,
            error_code=None if ok else f"tencent_{r.errmsg or 'FAIL'}", now=now))
    return out


def international(nationcode: str, mobile: str) -> str:
    """Tencent gives the country code apart; the reply path wants the number as people are stored."""
    return f"+{nationcode}{mobile}" if nationcode and not mobile.startswith("+") else mobile
