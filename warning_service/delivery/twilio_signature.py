"""Verify that a webhook really comes from Twilio (X-Twilio-Signature) before anything is written."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import FormData
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from warning_service.config import Settings
from warning_service.errors import Forbidden
from warning_service.logging import get_logger

log = get_logger(__name__)


def auth_tokens(settings: Settings) -> list[str]:
    """The current auth token first, then any still accepted during a rotation."""
    tokens = [settings.twilio_auth_token.get_secret_value()] if settings.twilio_auth_token else []
    tokens += [t.strip() for t in settings.twilio_auth_tokens_previous.split(",") if t.strip()]
    return [t for t in tokens if t]


def signed_url(request: Request, settings: Settings) -> str:
    """The URL Twilio signed: the public base (what Twilio was told to call), not what the proxy forwarded."""
    path = request.scope.get("path", request.url.path)
    root = request.scope.get("root_path", "")
    # A mount prefix is already part of PUBLIC_BASE_URL when the service lives under a sub-path.
    if root and path.startswith(root):
        path = path[len(root):]
    query = request.url.query
    return settings.public_base_url + path + (f"?{query}" if query else "")


def is_valid(*, url: str, params: FormData | dict[str, str], signature: str, tokens: list[str],
             algorithm: str | None = None) -> bool:
    return any(RequestValidator(t).validate(url, params, signature, algorithm) for t in tokens)


async def verified_twilio_form(request: Request) -> dict[str, str]:
    """FastAPI dependency: the webhook's form fields, or 403 when the signature does not hold."""
    settings: Settings = request.app.state.settings
    tokens = auth_tokens(settings)
    signature = request.headers.get(SIGNATURE_HEADER)
    if not tokens:
        # Without a token nothing can be verified, and an unverified receipt or acknowledgment
        # could be forged by anyone who knows the URL.
        log.warning("twilio_webhook_refused", reason="no auth token configured", path=request.url.path)
        raise Forbidden("Twilio webhooks are disabled: TWILIO_AUTH_TOKEN is not set",
                        "未配置 TWILIO_AUTH_TOKEN,拒绝 Twilio 回调")
    if not signature:
        log.warning("twilio_webhook_refused", reason="missing signature", path=request.url.path)
        raise Forbidden("missing X-Twilio-Signature", "缺少 X-Twilio-Signature 签名")
    form = await request.form()
    url = signed_url(request, settings)
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    if not is_valid(url=url, params=form, signature=signature, tokens=tokens, algorithm=algorithm):
        log.warning("twilio_webhook_refused", reason="bad signature", path=request.url.path,
                    url=url.split("?", 1)[0])  # the query may hold an acknowledgment link token
        raise Forbidden("invalid X-Twilio-Signature", "X-Twilio-Signature 签名无效")
    return {k: v for k, v in form.multi_items() if isinstance(v, str)}
