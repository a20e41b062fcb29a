"""SMS through Twilio Messages, with a status callback so delivery receipts come back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from channels.base import Message, SendResult
from channels.twilio_config import TwilioConfig

if TYPE_CHECKING:
    from twilio.rest import Client


async def send_sms(client: Client, config: TwilioConfig, message: Message) -> SendResult:
    """One Messages.create; Twilio answers queued/accepted, and the receipt says delivered later."""
    params: dict[str, Any] = {"to": message.address, "body": message.body}
    # A messaging service spreads a province-wide burst over a pool of numbers; one number is the fallback.
    if config.messaging_service_sid:
        params["messaging_service_sid"] = config.messaging_service_sid
    else:
        params["from_"] = config.from_number
    callback = config.status_callback(message)
    if callback:
        params["status_callback"] = callback
    msg = await client.messages.create_async(**params)
    if msg.status in ("failed", "undelivered"):
        return SendResult("failed", msg.sid, str(msg.error_code or "twilio_failed"), msg.error_message,
                          retryable=False)
    segments = int(msg.num_segments) if msg.num_segments and str(msg.num_segments).isdigit() else None
    return SendResult.ok(msg.sid, segments=segments)
