"""X-Twilio-Signature verification: current and previous tokens, proxy-correct URL, refusal otherwise."""

from __future__ import annotations

import httpx
import pytest
from fastapi import Depends, FastAPI
from twilio.request_validator import RequestValidator

from tests.conftest import make_settings
from warning_service.db import Database
from warning_service.delivery.twilio_signature import verified_twilio_form
from warning_service.errors import DomainError

PUBLIC = "https://warn.example.gov.cn/ws"


def _app(settings) -> tuple[FastAPI, list[dict[str, str]]]:
    from fastapi.responses import JSONResponse

    seen: list[dict[str, str]] = []
    app = FastAPI()
    app.state.settings = settings

    @app.exception_handler(DomainError)
    async def domain_error(_, exc: DomainError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.to_dict()})

    @app.post("/webhooks/twilio/sms")
    async def hook(form: dict[str, str] = Depends(verified_twilio_form)) -> dict[str, str]:
        seen.append(form)
        return {"ok": "yes"}

    return app, seen


async def _post(app: FastAPI, form: dict[str, str], signature: str | None, query: str = "") -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    # The app sees an internal host; Twilio signed the public URL.
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:8000") as c:
        return await c.post("/webhooks/twilio/sms" + query, data=form, headers=headers)


FORM = {"From": "+8613900000001", "Body": "1 收到", "MessageSid": "SM123"}


@pytest.fixture
def signed_settings(db: Database):
    return make_settings(db, public_base_url=PUBLIC, twilio_auth_token="current-token",
                         twilio_auth_tokens_previous="old-token-1, old-token-2")


async def test_signature_with_current_token_over_public_url_is_accepted(signed_settings) -> None:
    app, seen = _app(signed_settings)
    sig = RequestValidator("current-token").compute_signature(PUBLIC + "/webhooks/twilio/sms?x=1", FORM)
    r = await _post(app, FORM, sig, "?x=1")
    assert r.status_code == 200, r.text
    assert seen == [FORM]


async def test_signature_with_a_previous_token_is_accepted_during_rotation(signed_settings) -> None:
    app, seen = _app(signed_settings)
    sig = RequestValidator("old-token-2").compute_signature(PUBLIC + "/webhooks/twilio/sms", FORM)
    assert (await _post(app, FORM, sig)).status_code == 200
    assert len(seen) == 1


@pytest.mark.parametrize("case", ["missing", "wrong_token", "internal_url", "tampered_body"])
async def test_bad_or_missing_signature_is_refused_before_the_handler_runs(signed_settings, case: str
                                                                           ) -> None:
    app, seen = _app(signed_settings)
    url = PUBLIC + "/webhooks/twilio/sms"
    sig: str | None = RequestValidator("current-token").compute_signature(url, FORM)
    form = FORM
    if case == "missing":
        sig = None
    elif case == "wrong_token":
        sig = RequestValidator("someone-else").compute_signature(PUBLIC + "/webhooks/twilio/sms", FORM)
    elif case == "internal_url":
        sig = RequestValidator("current-token").compute_signature(
            "http://10.0.0.5:8000/webhooks/twilio/sms", FORM)
    else:
        form = {**FORM, "Body": "2"}
    r = await _post(app, form, sig)
    assert r.status_code == 403
    assert r.json()["detail"]["code"] == "forbidden"
    assert seen == []


async def test_without_any_auth_token_every_webhook_is_refused(db: Database) -> None:
    app, seen = _app(make_settings(db, public_base_url=PUBLIC))
    sig = RequestValidator("").compute_signature(PUBLIC + "/webhooks/twilio/sms", FORM)
    assert (await _post(app, FORM, sig)).status_code == 403
    assert seen == []
