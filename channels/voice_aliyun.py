"""Voice calls through Aliyun 语音服务 (dyvmsapi 2017-05-25) with the official SDK.

A call that asks for an answer goes as `IvrCall`, not `SingleCallByTts`: only the interactive call captures a
key press. The registered TTS template (StartCode, variables from the message's template fields) reads the
warning and asks "确认收到请按1"; MenuKeyMap binds key 1 to a registered confirmation template, so the person
hears "已确认收到" on the spot, and Aliyun pushes the digits (`dtmf`) with the call's status (VoiceCallReport
when pressed, VoiceReport at the end) to the push URL, where key 1 acknowledges the notice. A call with
nothing to answer (a lift notice, an update to someone who already answered) goes as `SingleCallByTts`.

Either way the provider id is the CallId, which every push carries; OutId is the outbox id (Aliyun allows
1–15 bytes), so a push that outruns our write of the CallId still finds its row.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from alibabacloud_dyvmsapi20170525 import models as vms_models
from alibabacloud_dyvmsapi20170525.client import Client

from channels.aliyun_common import answer_code, classify, sdk_config
from channels.base import Message, SendResult
from channels.templates import TemplateSet, address_for_platform

DEFAULT_VARIABLE_MAX = 20  # characters per TTS variable unless the template says otherwise
ACK_KEY = "1"
MAX_OUT_ID = 15  # bytes


@dataclass(frozen=True)
class AliyunVoiceConfig:
    access_key_id: str
    access_key_secret: str
    called_show_number: str  # the purchased number the call comes from (真实号)
    templates: TemplateSet
    # Played when key 1 is pressed; None: calls that ask for an answer cannot go through Aliyun.
    confirm_code: str | None = None
    bye_code: str | None = None  # played at the end of an interactive call without a key press
    endpoint: str = "dyvmsapi.aliyuncs.com"
    play_times: int = 2  # the warning is read this many times (Aliyun allows 1–3)
    key_timeout_ms: int = 8000  # how long the call waits for a key after the prompt
    timeout: float = 10.0
    max_connections: int = 100


class AliyunVoiceAdapter:
    name = "aliyun"

    def __init__(self, config: AliyunVoiceConfig) -> None:
        self.config = config
        self.client = Client(sdk_config(access_key_id=config.access_key_id,
                                        access_key_secret=config.access_key_secret, endpoint=config.endpoint,
                                        timeout=config.timeout, max_connections=config.max_connections))
        self.send_timeout = config.timeout + 5.0

    async def send(self, message: Message) -> SendResult:
        a = address_for_platform(message, channel="voice", name="aliyun voice", templates=self.config.templates)
        if isinstance(a, SendResult):
            return a
        number, template, values = a.number, a.template, a.values
        params = json.dumps(dict(values), ensure_ascii=False) if values else None
        out_id = _out_id(message)
        wants_key = message.gather_action is not None
        if wants_key and not self.config.confirm_code:
            return SendResult.permanent("no_confirm_template", "ALIYUN_VOICE_CONFIRM_TTS_CODE is not set: "
                                        "this call asks for key 1").refused()
        try:
            async with asyncio.timeout(self.config.timeout):
                if wants_key:
                    response = await self.client.ivr_call_async(vms_models.IvrCallRequest(
                        called_show_number=self.config.called_show_number, called_number=number,
                        start_code=template.code, start_tts_params=params,
                        menu_key_map=[vms_models.IvrCallRequestMenuKeyMap(key=ACK_KEY,
                                                                          code=self.config.confirm_code)],
                        bye_code=self.config.bye_code, play_times=self.config.play_times,
                        timeout=self.config.key_timeout_ms, out_id=out_id))
                else:
                    response = await self.client.single_call_by_tts_async(vms_models.SingleCallByTtsRequest(
                        called_show_number=self.config.called_show_number, called_number=number,
                        tts_code=template.code, tts_param=params, play_times=self.config.play_times,
                        out_id=out_id))
        except Exception as exc:  # noqa: BLE001 — adapters report provider errors, never raise them
            return classify(exc)
        body = response.body
        failed = answer_code(body.code, body.message)
        if failed is not None:
            return failed
        return SendResult.ok(body.call_id or None)

    async def aclose(self) -> None:
        return None  # the SDK opens one HTTP session per call


def _out_id(message: Message) -> str | None:
    raw = message.metadata.get("outbox_id") or ""
    return raw if raw and len(raw.encode()) <= MAX_OUT_ID else None
