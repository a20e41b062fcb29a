"""SMS through Aliyun 短信服务 (dysmsapi 2017-05-25) with the official SDK: SendBatchSms for bursts.

A warning to many people is one text per person (each has their own link token and reply code), so it goes
as SendBatchSms: up to 100 numbers per call, each with its own template values. A lone message goes as
SendSms. Aliyun names a batch with one BizId; a message is `BizId:number`, which is also what its receipt
(SmsReport push: biz_id + phone_number) resolves to.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Hashable
from dataclasses import dataclass

from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client

from channels.aliyun_common import RECIPIENT_CODES, answer_code, classify, sdk_config
from channels.base import Message, SendResult, sms_segments
from channels.batching import Coalescer, Pending
from channels.templates import TemplateSet, address_for_platform

BATCH_LIMIT = 100  # numbers per SendBatchSms call (Aliyun's limit)
DEFAULT_VARIABLE_MAX = 35  # characters per variable unless the template says otherwise


@dataclass(frozen=True)
class AliyunSmsConfig:
    access_key_id: str
    access_key_secret: str
    sign_name: str
    templates: TemplateSet
    endpoint: str = "dysmsapi.aliyuncs.com"
    timeout: float = 10.0
    batch_size: int = BATCH_LIMIT
    batch_wait: float = 0.05  # seconds a message waits for others to share its call
    max_connections: int = 100


def provider_id(biz_id: str, number: str) -> str:
    return f"{biz_id}:{number}"


class AliyunSmsAdapter:
    name = "aliyun"

    def __init__(self, config: AliyunSmsConfig) -> None:
        self.config = config
        self.client = Client(sdk_config(access_key_id=config.access_key_id,
                                        access_key_secret=config.access_key_secret, endpoint=config.endpoint,
                                        timeout=config.timeout, max_connections=config.max_connections))
        self.batches = Coalescer(self._flush, max_size=min(config.batch_size, BATCH_LIMIT),
                                 max_wait=config.batch_wait)
        self.max_batch = self.batches.max_size  # the dispatcher hands over this many at once (send_many)
        # One call's answer waits for the batch to fill, then for Aliyun.
        self.send_timeout = config.timeout + config.batch_wait + 5.0

    async def send(self, message: Message) -> SendResult:
        a = address_for_platform(message, channel="sms", name="aliyun sms", templates=self.config.templates)
        if isinstance(a, SendResult):
            return a
        return await self.batches.submit(a.template.code, message, (a.number, dict(a.values)))

    async def send_many(self, messages: list[Message]) -> list[SendResult]:
        """Many messages at once (the dispatcher's batch senders): SendBatchSms per template, 100 numbers a call."""
        out: list[SendResult | None] = [None] * len(messages)
        todo: list[int] = []
        entries = []
        for i, message in enumerate(messages):
            a = address_for_platform(message, channel="sms", name="aliyun sms", templates=self.config.templates)
            if isinstance(a, SendResult):
                out[i] = a
            else:
                todo.append(i)
                entries.append((a.template.code, message, (a.number, dict(a.values))))
        for i, result in zip(todo, await self.batches.send_many(entries), strict=True):
            out[i] = result
        return out  # type: ignore[return-value]

    async def _flush(self, key: Hashable, group: list[Pending]) -> list[SendResult]:
        if len(group) == 1:
            return [await self._send_one(str(key), group[0])]
        results = await self._send_batch(str(key), group)
        if results[0].error_code and results[0].error_code.removeprefix("aliyun_") in RECIPIENT_CODES:
            # One bad number refuses the whole batch: send each alone so the others still go.
            return list(await asyncio.gather(*(self._send_one(str(key), p) for p in group)))
        return results

    async def _send_batch(self, code: str, group: list[Pending]) -> list[SendResult]:
        numbers = [p.payload[0] for p in group]
        request = sms_models.SendBatchSmsRequest(
            phone_number_json=json.dumps(numbers),
            sign_name_json=json.dumps([self.config.sign_name] * len(group), ensure_ascii=False),
            template_code=code,
            template_param_json=json.dumps([p.payload[1] for p in group], ensure_ascii=False))
        try:
            async with asyncio.timeout(self.config.timeout):
                response = await self.client.send_batch_sms_async(request)
        except Exception as exc:  # noqa: BLE001 — adapters report provider errors, never raise them
            return [classify(exc)] * len(group)
        body = response.body
        failed = answer_code(body.code, body.message)
        if failed is not None:
            return [failed] * len(group)
        return [SendResult.ok(provider_id(body.biz_id, n), segments=_segments(p)) for n, p in zip(numbers, group,
                                                                                                     strict=True)]

    async def _send_one(self, code: str, pending: Pending) -> SendResult:
        number, values = pending.payload
        request = sms_models.SendSmsRequest(
            phone_numbers=number, sign_name=self.config.sign_name, template_code=code,
            template_param=json.dumps(values, ensure_ascii=False),
            out_id=pending.message.metadata.get("outbox_id") or None)
        try:
            async with asyncio.timeout(self.config.timeout):
                response = await self.client.send_sms_async(request)
        except Exception as exc:  # noqa: BLE001
            return classify(exc)
        body = response.body
        failed = answer_code(body.code, body.message)
        return failed or SendResult.ok(provider_id(body.biz_id, number), segments=_segments(pending))

    async def aclose(self) -> None:
        await self.batches.aclose()


def _segments(pending: Pending) -> int | None:
    """Parts as the renderer counted them for the full text (the registered template reads the same)."""
    raw = pending.message.metadata.get("segments")
    return int(raw) if raw and raw.isdigit() else sms_segments(pending.message.body) if pending.message.body else None
