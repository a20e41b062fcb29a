"""SMS through Tencent Cloud 短信 (sms 2021-01-11) with the official SDK's async client: SendSms.

SendSms takes up to 200 numbers, but ONE TemplateParamSet for all of them. A warning's text is personal (each
person has their own link token), so the strategy follows the template:

- a template with a personal variable (`token`) goes one number per call, as many calls at once as
  `max_connections` allows, over kept-alive connections. Grouping could never share a call here (no two people
  have the same token), and waiting to try would only delay every text;
- a template without one (an all-clear with area, hazard, level) reads the same for everyone of an area: those
  messages are gathered (channels/batching.py) by template and identical values into calls of up to 200 numbers.

The key of a group is the exact values, so two people share a call only when their texts are identical; which
templates wait to be grouped changes latency, never what anyone reads.

Provider id of a message: the `SerialNo` Tencent gives each number, which its status callback sends back as
`sid`. A number's own status (`SendStatusSet[].Code`) decides its result; a call-level error decides all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass

from tencentcloud.sms.v20210111 import models as sms_models
from tencentcloud.sms.v20210111.sms_client_async import SmsClient

from channels.base import Message, SendResult, sms_segments
from channels.batching import Coalescer, Pending
from channels.templates import TemplateSet, address_for_platform, mainland_number
from channels.tencent_common import RECIPIENT_CODES, answer_code, classify, sdk_client_args

BATCH_LIMIT = 200  # numbers per SendSms call (Tencent's limit)
# Tencent's per-variable rule: 6 characters for accounts opened since 2024-01-25 (12 for older ones, more where the
# console allows it; the console shows each account's figure). `/N` in the template setting overrides it.
DEFAULT_VARIABLE_MAX = 6
PERSONAL = frozenset({"token"})  # variables that make a text one person's own


@dataclass(frozen=True)
class TencentSmsConfig:
    secret_id: str
    secret_key: str
    sdk_app_id: str
    sign_name: str
    templates: TemplateSet
    endpoint: str = "sms.tencentcloudapi.com"
    region: str = "ap-guangzhou"
    timeout: float = 10.0
    batch_wait: float = 0.05  # seconds a shared-text message waits for others to share its call
    max_connections: int = 100


class TencentSmsAdapter:
    name = "tencent"

    def __init__(self, config: TencentSmsConfig) -> None:
        self.config = config
        credential, profile, transport = sdk_client_args(
            secret_id=config.secret_id, secret_key=config.secret_key, endpoint=config.endpoint,
            timeout=config.timeout, max_connections=config.max_connections)
        self.client = SmsClient(credential, config.region, profile)
        self._sdk_transport, self.client.http_client = self.client.http_client, transport
        # Calls beyond the connection pool wait here, before their timeout starts: a call that never left is
        # not one that timed out.
        self.gate = asyncio.Semaphore(config.max_connections)
        self.groups = Coalescer(self._flush, max_size=BATCH_LIMIT, max_wait=config.batch_wait)
        self.calls = 0
        self.send_timeout = config.timeout + config.batch_wait + 5.0

    async def send(self, message: Message) -> SendResult:
        a = address_for_platform(message, channel="sms", name="tencent sms", templates=self.config.templates)
        if isinstance(a, SendResult):
            return a
        number, template, values = a.number, a.template, a.values
        params = tuple(v for _, v in values)
        if any(name in PERSONAL for name, _ in values):
            call_error, results = await self._call(template.code, params, [number], [message])
            return call_error or results[0]
        return await self.groups.submit((template.code, params), message, number)

    async def _flush(self, key: Hashable, group: list[Pending]) -> list[SendResult]:
        code, params = key  # type: ignore[misc]
        numbers, messages = [p.payload for p in group], [p.message for p in group]
        call_error, results = await self._call(code, params, numbers, messages)
        if call_error is None:
            return results
        if len(group) > 1 and (call_error.error_code or "").removeprefix("tencent_") in RECIPIENT_CODES:
            # The whole call refused for one bad number: send each alone so the others still go.
            alone = await asyncio.gather(*(self._call(code, params, [n], [m]) for n, m in zip(numbers, messages,
                                                                                             strict=True)))
            return [err or res[0] for err, res in alone]
        return [call_error] * len(group)

    async def _call(self, code: str, params: tuple[str, ...], numbers: list[str], messages: list[Message]
                    ) -> tuple[SendResult | None, list[SendResult]]:
        """(the call's own failure, or None and one result per number)."""
        request = sms_models.SendSmsRequest()
        request.PhoneNumberSet = [f"+86{n}" for n in numbers]
        request.SmsSdkAppId = self.config.sdk_app_id
        request.SignName = self.config.sign_name
        request.TemplateId = code
        request.TemplateParamSet = list(params)
        if len(messages) == 1:
            # Echoed in the status callback: lets an operator trace a receipt to its outbox row by hand.
            request.SessionContext = messages[0].metadata.get("outbox_id") or ""
        async with self.gate:
            self.calls += 1
            try:
                async with asyncio.timeout(self.config.timeout):
                    response = await self.client.SendSms(request)
            except Exception as exc:  # noqa: BLE001 — adapters report provider errors, never raise them
                return classify(exc), []
        statuses: dict[str, list[sms_models.SendStatus]] = {}
        for status in response.SendStatusSet or []:
            statuses.setdefault(mainland_number(status.PhoneNumber or "") or "", []).append(status)
        out = []
        for number, message in zip(numbers, messages, strict=True):
            mine = statuses.get(number)
            if not mine:
                # Accepted as a call but silent about this number: it may have gone out, so never hand it on.
                out.append(SendResult.transient("tencent_no_status", f"no status for +86{number} in the answer"))
                continue
            status = mine.pop(0)
            failed = answer_code(status.Code, status.Message)
            out.append(failed or SendResult.ok(status.SerialNo, segments=status.Fee or _segments(message)))
        return None, out

    async def aclose(self) -> None:
        await self.groups.aclose()
        await self.client.http_client.aclose()
        await self._sdk_transport.aclose()


def _segments(message: Message) -> int | None:
    raw = message.metadata.get("segments")
    return int(raw) if raw and raw.isdigit() else sms_segments(message.body) if message.body else None
