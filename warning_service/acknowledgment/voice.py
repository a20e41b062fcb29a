"""TwiML answers to the voice call's key press: confirm 1, repeat the prompt once for anything else."""

from __future__ import annotations

from urllib.parse import urlencode

from twilio.twiml.voice_response import VoiceResponse

LANG = "zh-CN"
CONFIRMED = "已确认收到,谢谢。请立即到岗到位,组织危险区域人员转移避险。再见。"
LIFTED = "该预警已解除,无需确认。再见。"
UNKNOWN = "抱歉,无法识别本次通知,请按短信提示确认。再见。"
NO_ANSWER = "未收到确认,稍后将再次联系您。再见。"
PROMPT = "确认收到请按1。"


def _say(text: str) -> str:
    r = VoiceResponse()
    r.say(text, language=LANG)
    r.hangup()
    return str(r)


def confirmed() -> str:
    return _say(CONFIRMED)


def lifted() -> str:
    return _say(LIFTED)


def unknown() -> str:
    return _say(UNKNOWN)


def goodbye() -> str:
    return _say(NO_ANSWER)


def gather_action(base_url: str, token: str, *, repeat: int) -> str:
    """Where the repeated prompt posts its key press; `r` counts repeats so the prompt is given once more."""
    return f"{base_url}/webhooks/twilio/voice/gather?{urlencode({'t': token, 'r': repeat})}"


def repeat_prompt(*, label: str, action: str) -> str:
    """Ask once more; silence or another wrong key then ends the call politely."""
    r = VoiceResponse()
    gather = r.gather(num_digits=1, action=action, method="POST", timeout=8)
    gather.say(f"您收到的是{label}。{PROMPT}", language=LANG)
    gather.say(PROMPT, language=LANG)
    r.say(NO_ANSWER, language=LANG)
    r.hangup()
    return str(r)
