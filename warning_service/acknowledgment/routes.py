"""叫应 endpoints: the link page; Twilio's SMS-reply and key-press webhooks; the domestic platforms' reply and
key-press pushes (proxy answers: notice/routes.py)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from twilio.twiml.messaging_response import MessagingResponse

from warning_service.acknowledgment import feedback, inbound, pages, voice, voice_keys
from warning_service.acknowledgment.feedback import FeedbackIn
from warning_service.config import Settings
from warning_service.delivery import push
from warning_service.delivery.routes import ALIYUN_OK, TENCENT_OK, AliyunPush, TencentPush
from warning_service.delivery.twilio_signature import verified_twilio_form
from warning_service.deps import NowDep, SessionDep, SettingsDep
from warning_service.early_warning.models import EarlyWarning
from warning_service.errors import Invalid, NotFound
from warning_service.notice import answer
from warning_service.notice.answer import NotAcknowledgeable
from warning_service.notice.models import Notice
from warning_service.notice.tokens import link_key, parse_token

public_router = APIRouter(tags=["acknowledgment"])
webhook_router = APIRouter(prefix="/webhooks/twilio", tags=["webhooks"])
push_router = APIRouter(prefix="/webhooks", tags=["webhooks"])
TwilioForm = Annotated[dict[str, str], Depends(verified_twilio_form)]




@lru_cache(maxsize=4)
def _key(secret: str) -> bytes:
    return link_key(secret)


def notice_from_token(token: str, settings: Settings) -> int | None:
    return parse_token(token, key=_key(settings.secret_key.get_secret_value()))


def client_ip(request: Request) -> str:
    """The caller's address (uvicorn's --proxy-headers puts the real one here behind a proxy)."""
    return request.client.host if request.client else "unknown"


def wants_json(request: Request) -> bool:
    if request.headers.get("content-type", "").startswith("application/json"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _page_url(request: Request, token: str, query: str) -> str:
    return f"{request.scope.get('root_path', '')}/a/{token}?{query}"


async def _bad_token(request: Request, settings: Settings) -> Response:
    """404 for an unknown or forged token; 429 once one address has sent too many."""
    rt = request.app.state.runtime
    over = await rt.bad_tokens.hit(client_ip(request), rt.clock.now())
    code = 429 if over else 404
    headers = {"Retry-After": "60"} if over else None
    if wants_json(request):
        title, text = pages.MESSAGES[code]
        return JSONResponse({"detail": {"code": "rate_limited" if over else "not_found", "message": title,
                                        "message_zh": text}}, status_code=code, headers=headers)
    return pages.message_page(settings, code, headers=headers)


def _gone(request: Request, settings: Settings) -> Response:
    if wants_json(request):
        title, text = pages.MESSAGES[410]
        body = {"detail": {"code": "gone", "message": title, "message_zh": text}}
        return JSONResponse(body, status_code=410)
    return pages.message_page(settings, 410)


# --- the link ---------------------------------------------------------------------------------------------

@public_router.get("/a/{token}", response_model=None)
async def ack_page(token: str, request: Request, settings: SettingsDep, now: NowDep, session: SessionDep,
                   done: int = 0, saved: int = 0) -> Response:
    """The acknowledgment page: the warning, the deadline and a large 确认收到 button (no login)."""
    notice_id = notice_from_token(token, settings)
    view = await pages.load_view(session, notice_id=notice_id) if notice_id is not None else None
    if view is None:
        return await _bad_token(request, settings)
    if view.gone(now, settings.ack_link_grace_hours):
        return _gone(request, settings)
    if wants_json(request):
        return JSONResponse(pages.json_view(view, now=now), headers=pages.SECURITY_HEADERS)
    flash = "反馈已保存,谢谢!" if saved else ("已确认收到,谢谢!请立即到岗到位。" if done else None)
    return pages.render(settings, "page.html.j2", pages.page_context(view, token=token, now=now, flash=flash))


@public_router.post("/a/{token}", response_model=None)
async def ack_by_link(token: str, request: Request, settings: SettingsDep, now: NowDep) -> Response:
    """确认收到 by link: form posts are redirected to the page, JSON gets the result."""
    notice_id = notice_from_token(token, settings)
    if notice_id is None:
        return await _bad_token(request, settings)
    db = request.app.state.db
    try:
        # The first answer is the hot path: one statement, one round trip, no session, no look-up first.
        result = await answer.answer(db, notice_id=notice_id, path="link", now=now, source=client_ip(request))
    except NotFound:
        return await _bad_token(request, settings)
    except NotAcknowledgeable as refused:
        async with db.session() as session:
            if await _link_expired(session, notice_id, now, settings):
                return _gone(request, settings)
        if wants_json(request):
            return JSONResponse({"detail": refused.to_dict()}, status_code=refused.status_code)
        return RedirectResponse(_page_url(request, token, "done=0"), status_code=303)
    # A second tap: its notice came back with the answer, as it was read, its warning's state included.
    if result.notice is not None and answer.gone(result.notice, now=now, grace_hours=settings.ack_link_grace_hours):
        return _gone(request, settings)
    if wants_json(request):
        return JSONResponse(result.public())
    return RedirectResponse(_page_url(request, token, "done=1"), status_code=303)


async def _link_expired(session: AsyncSession, notice_id: int, now: datetime, settings: Settings) -> bool:
    loaded = await answer.load_notice(session, notice_id)
    return loaded is not None and answer.gone(loaded, now=now, grace_hours=settings.ack_link_grace_hours)


def _form_int(value: Any) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else (None if not text else -1)  # -1 fails validation below


async def _feedback_from(request: Request) -> FeedbackIn:
    try:
        if wants_json(request):
            return FeedbackIn.model_validate(await request.json())
        form = await request.form()
        at_post = {"yes": True, "no": False}.get(str(form.get("at_post") or ""))
        return FeedbackIn(at_post=at_post, villages_affected=_form_int(form.get("villages_affected")),
                          people_evacuated=_form_int(form.get("people_evacuated")),
                          note=str(form.get("note") or "") or None)
    except (ValidationError, ValueError) as exc:
        raise Invalid(f"invalid feedback: {exc}", "反馈内容无效:人数须为不小于0的整数,说明不超过2000字",
                      field="feedback") from None


@public_router.post("/a/{token}/feedback", response_model=None)
async def feedback_by_link(token: str, request: Request, settings: SettingsDep, now: NowDep,
                           session: SessionDep) -> Response:
    """响应反馈: add or amend at-post, villages affected, people evacuated and a note after answering."""
    notice_id = notice_from_token(token, settings)
    loaded = await answer.load_notice(session, notice_id) if notice_id is not None else None
    if loaded is None:
        return await _bad_token(request, settings)
    if answer.gone(loaded, now=now, grace_hours=settings.ack_link_grace_hours):
        return _gone(request, settings)
    try:
        data = await _feedback_from(request)
    except Invalid as exc:
        if wants_json(request):
            raise
        view = await pages.load_view(session, notice_id=loaded.id)
        assert view is not None
        ctx = pages.page_context(view, token=token, now=now, flash=exc.message_zh)
        return pages.render(settings, "page.html.j2", ctx, status_code=422)
    saved = await feedback.record_feedback(session, notice_id=loaded.id, data=data, now=now,
                                          actor=f"person:{loaded.person_id}", source=client_ip(request))
    if wants_json(request):
        return JSONResponse({"feedback": feedback.feedback_dict(saved)}, headers=pages.SECURITY_HEADERS)
    return RedirectResponse(_page_url(request, token, "saved=1"), status_code=303)


# --- Twilio webhooks ----------------------------------------------------------------------------------------

def _twiml(xml: str) -> Response:
    return Response(content=xml, media_type="application/xml")


@webhook_router.post("/sms")
async def sms_reply(request: Request, form: TwilioForm, settings: SettingsDep, now: NowDep) -> Response:
    """Inbound SMS (signed by Twilio): `1`, `收到`, a warning's code or `全部`; answered with TwiML."""
    outcome = await inbound.handle_sms_reply(request.app.state.db, from_number=form.get("From", ""),
                                             body=form.get("Body", ""), now=now, settings=settings,
                                             sid=form.get("MessageSid") or form.get("SmsSid") or "")
    reply = MessagingResponse()
    if outcome.text:
        reply.message(outcome.text)
    return _twiml(str(reply))


@webhook_router.post("/voice/gather")
async def voice_gather(request: Request, form: TwilioForm, session: SessionDep, settings: SettingsDep,
                       now: NowDep, t: str = "", r: int = 0) -> Response:
    """Key press in the warning call (signed): 1 acknowledges; anything else hears the prompt once more."""
    notice_id = notice_from_token(t, settings)
    if notice_id is None:
        return _twiml(voice.unknown())
    digits = form.get("Digits", "").strip()
    callee = form.get("Called") or form.get("To") or None
    if digits == "1":
        call_sid = form.get("CallSid", "")
        # One key press per prompt of a call: a repeat of the same press (Twilio retrying, or a captured request
        # replayed after the notice was re-opened) records nothing; the first one was already confirmed.
        if call_sid and not await inbound.first_receipt(request.app.state.db, sid=f"{call_sid}/{r}",
                                                        kind="voice_key", now=now):
            return _twiml(voice.confirmed())
        try:
            await answer.answer(request.app.state.db, notice_id=notice_id, path="voice_key", now=now,
                                 raw_input=digits, source=callee)
        except NotAcknowledgeable:
            return _twiml(voice.lifted())
        except NotFound:
            return _twiml(voice.unknown())
        return _twiml(voice.confirmed())
    if r >= 1:
        return _twiml(voice.goodbye())
    row = (await session.execute(select(EarlyWarning.hazard, EarlyWarning.level, EarlyWarning.status)
                                 .join(Notice, Notice.warning_id == EarlyWarning.id)
                                 .where(Notice.id == notice_id))).first()
    if row is None:
        return _twiml(voice.unknown())
    label = inbound.warning_label(*row)
    return _twiml(voice.repeat_prompt(label=label, action=voice.gather_action(settings.public_base_url, t,
                                                                                repeat=1)))


# --- domestic SMS platforms' uplink pushes --------------------------------------------------------------------
# The same 叫应 path as Twilio's SMS webhook. These platforms cannot answer inline, and their templates cannot
# carry a free text, so the person gets no answering SMS here (see docs/notes/channels.md).

@push_router.post("/aliyun/sms/up", include_in_schema=False)
async def aliyun_sms_up(request: Request, items: AliyunPush, settings: SettingsDep, now: NowDep) -> JSONResponse:
    """Aliyun SmsUp push (token verified): each reply acknowledges what it means, exactly as by Twilio."""
    for up in push.parse(push.AliyunUplink, items):
        await inbound.handle_sms_reply(request.app.state.db, from_number=up.phone_number, body=up.content,
                                       now=now, settings=settings)
    return JSONResponse(ALIYUN_OK)


@push_router.post("/aliyun/voice/report", include_in_schema=False)
async def aliyun_voice_report(request: Request, items: AliyunPush, now: NowDep) -> JSONResponse:
    """Aliyun VoiceReport and VoiceCallReport pushes (token verified): key 1 acknowledges the call's notice
    once, as Twilio's <Gather> does; final call statuses are receipts."""
    await voice_keys.apply_aliyun_voice_push(request.app.state.db, items=push.parse(push.AliyunVoiceReport, items),
                                             now=now)
    return JSONResponse(ALIYUN_OK)


@push_router.post("/tencent/sms/reply", include_in_schema=False)
async def tencent_sms_reply(request: Request, items: TencentPush, settings: SettingsDep, now: NowDep
                            ) -> JSONResponse:
    """Tencent Cloud SMS reply callback (token verified): into the same 叫应 path."""
    for up in push.parse(push.TencentReply, items):
        await inbound.handle_sms_reply(request.app.state.db, from_number=push.international(up.nationcode, up.mobile),
                                       body=up.text, now=now, settings=settings)
    return JSONResponse(TENCENT_OK)
