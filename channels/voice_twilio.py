"""Voice calls through Twilio Calls: inline TwiML reads the warning in Chinese and waits for key 1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twilio.twiml.voice_response import VoiceResponse

from channels.base import Message, SendResult
from channels.twilio_config import TwilioConfig

if TYPE_CHECKING:
    from twilio.rest import Client


ACK_PROMPT = "收到请按1。"
CALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


def twiml(message: Message) -> str:
    """Read the text, ask for 1, read it once more; a key press at any point posts to the gather action."""
    response = VoiceResponse()
    text = message.body
    if message.gather_action:
        prompt = message.metadata.get("prompt", ACK_PROMPT)
        gather = response.gather(num_digits=1, action=message.gather_action, method="POST", timeout=8)
        gather.say(text, language="zh-CN")
        gather.say(prompt, language="zh-CN")
        gather.say(text, language="zh-CN")
        gather.say(prompt, language="zh-CN")
    else:
        # Nothing to acknowledge (e.g. the lift notice): read it twice so a half-awake listener catches it.
        response.say(text, language="zh-CN")
        response.say(text, language="zh-CN")
    return str(response)


async def place_call(client: Client, config: TwilioConfig, message: Message) -> SendResult:
    """One Calls.create; "completed" in the status callback means someone picked up."""
    params: dict[str, Any] = {"to": message.address, "from_": config.from_number, "twiml": twiml(message),
                              "timeout": 30}  # seconds of ringing before "no-answer"
    callback = config.status_callback(message)
    if callback:
        params.update(status_callback=callback, status_callback_event=CALL_EVENTS,
                      status_callback_method="POST")
    call = await client.calls.create_async(**params)
    return SendResult.ok(call.sid)
