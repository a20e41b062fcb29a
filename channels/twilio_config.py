"""Twilio settings and error classification, shared by the SMS and voice operations and the adapter."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException

from channels.base import Message, SendResult

# Twilio errors that say the address itself is wrong or refuses us: retrying cannot help.
# 21211 invalid To; 21214 not reachable by voice; 21217 not a valid phone; 21401 invalid number format;
# 21407/21408 region not enabled; 21610 recipient unsubscribed (STOP); 21612 cannot route; 21614 not mobile;
# 13223/13224 invalid number for calls.
PERMANENT_CODES = {21211, 21214, 21217, 21219, 21401, 21407, 21408, 21421, 21601, 21604, 21610, 21612,
                   21614, 21635, 13223, 13224, 13225, 13226}
# 20003 authentication failed, 20429 too many requests, 20500/20503 internal / unavailable: ours or theirs
# to fix, not the recipient's, so the message waits and tries again.
RETRYABLE_CODES = {20003, 20429, 20500, 20503, 30001, 14107}


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str
    auth_token: str
    from_number: str | None = None
    messaging_service_sid: str | None = None
    api_base_url: str = "https://api.twilio.com"
    public_base_url: str | None = None  # default StatusCallback host when a message names none
    timeout: float = 15.0
    max_connections: int = 100

    @classmethod
    def from_mapping(cls, c: Mapping[str, Any]) -> TwilioConfig:
        return cls(account_sid=c["twilio_account_sid"], auth_token=c["twilio_auth_token"],
                   from_number=c.get("twilio_from_number"),
                   messaging_service_sid=c.get("twilio_messaging_service_sid"),
                   api_base_url=c.get("twilio_api_base_url") or "https://api.twilio.com",
                   public_base_url=c.get("public_base_url"),
                   timeout=float(c.get("twilio_timeout") or 15.0),
                   max_connections=int(c.get("channel_concurrency") or 100))

    def status_callback(self, message: Message) -> str | None:
        if message.status_callback:
            return message.status_callback
        return f"{self.public_base_url.rstrip('/')}/webhooks/twilio/status" if self.public_base_url else None


def classify(exc: BaseException) -> SendResult:
    """Turn whatever the library raised into a result: transient (retry later) or permanent (give up)."""
    if isinstance(exc, TwilioRestException):
        code = int(exc.code) if str(exc.code).isdigit() else None
        status = int(exc.status or 0)
        label = f"twilio_{code or status}"
        text = str(exc.msg or exc)[:500]
        if code in PERMANENT_CODES:
            return SendResult.permanent(label, text)
        if code in RETRYABLE_CODES or status in (401, 408, 409, 429) or status >= 500:
            return SendResult.transient(label, text)
        return SendResult.permanent(label, text)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return SendResult.transient("timeout", "Twilio did not answer in time")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return SendResult.transient("network", f"{type(exc).__name__}: {exc}"[:500])
    if isinstance(exc, TwilioException):
        return SendResult.transient("twilio_error", str(exc)[:500])
    # Anything unexpected is treated as transient: a bug or outage must not drop a warning for good.
    return SendResult.transient("error", f"{type(exc).__name__}: {exc}"[:500])
