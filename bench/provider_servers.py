"""The providers bench/latency.py can dispatch through: each a local server that speaks the provider's API
(run in a process of its own, checking every request's signature or credentials) and the settings that point
the real adapter at it.

To add a provider: write its `serve(latency)` returning a `Served` and its `settings(base_url)` (what a
deployment would set, plus the endpoint), and add a `BenchProvider` to `PROVIDERS`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.channels import fake_tencent
from tests.channels.fake_tencent import FakeTencent
from tests.delivery import fake_aliyun, fake_twilio
from tests.delivery.fake_aliyun import FakeAliyun
from tests.delivery.fake_twilio import FakeTwilio

Latency = Callable[[], float]

ALIYUN_SIGN = "浙江防汛"
ALIYUN_TEMPLATES = ("alert=SMS_480000001:sender/20,area/20,hazard,level,reply_code,token;"
                    "default=SMS_480000002:area/20,hazard,level")
ALIYUN_REGISTERED = {"SMS_480000001": {"sender", "area", "hazard", "level", "reply_code", "token"},
                     "SMS_480000002": {"area", "hazard", "level"}}


@dataclass
class Figures:
    """What the server saw: messages accepted, provider calls, calls open at once, refusals, the wall time
    (time.time) of the last acceptance."""

    accepted: int = 0
    calls: int = 0
    open: int = 0
    max_open: int = 0
    refused: int = 0
    last_accepted: float = 0.0
    cpu: float = 0.0  # the server process's CPU seconds while the workers ran (set by bench.latency)


@dataclass
class Served:
    base_url: str
    figures: Figures
    runner: web.AppRunner


@dataclass(frozen=True)
class BenchProvider:
    name: str
    serve: Callable[[Latency], Awaitable[Served]]
    settings: Callable[[str], dict[str, Any]]
    note: str


class _Counted:
    """A test server's request handler counting calls and calls open, keeping figures instead of every request."""

    figures: Figures
    requests: list[Any]

    async def _handle(self, request: web.Request) -> web.Response:
        f = self.figures
        f.calls += 1
        f.open += 1
        f.max_open = max(f.max_open, f.open)
        try:
            return await super()._handle(request)  # type: ignore[misc]
        finally:
            f.open -= 1
            if len(self.requests) > 1000:  # each handler keeps its own record; the list only grows
                self.requests.clear()


class _CountingAliyun(_Counted, FakeAliyun):
    """The test server (ACS3-HMAC-SHA256 verified independently of the SDK, nonces and dates checked)."""

    def _answer(self, request: web.Request, raw: bytes, action: str, p: dict[str, str],
                record: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        status, body = super()._answer(request, raw, action, p, record)
        if body.get("Code") == "OK":
            self.figures.accepted += len(record.get("numbers", ()))
            self.figures.last_accepted = time.time()
        else:
            self.figures.refused += 1
        return status, body


async def serve_aliyun(latency: Latency) -> Served:
    fake = _CountingAliyun(templates=ALIYUN_REGISTERED, sign_names={ALIYUN_SIGN}, latency=latency)
    fake.figures = Figures()
    runner = await fake_aliyun.start(fake)
    return Served(fake.base_url, fake.figures, runner)


def aliyun_settings(base_url: str) -> dict[str, Any]:
    return {"channel_adapters": "sms=aliyun", "aliyun_access_key_id": fake_aliyun.ACCESS_KEY_ID,
            "aliyun_access_key_secret": fake_aliyun.ACCESS_KEY_SECRET, "aliyun_sms_sign_name": ALIYUN_SIGN,
            "aliyun_sms_templates": ALIYUN_TEMPLATES, "aliyun_sms_endpoint": base_url}


class _CountingTwilio(FakeTwilio):
    """The test server (Basic auth with the account's token, parameters checked against Twilio's OpenAPI
    description) with a latency per call, keeping figures instead of every request."""

    figures: Figures
    latency: Latency

    def _create(self, resource: str):  # type: ignore[no-untyped-def]
        async def handler(request: web.Request) -> web.Response:
            f = self.figures
            f.calls += 1
            f.open += 1
            f.max_open = max(f.max_open, f.open)
            try:
                form = dict(await request.post())
                await asyncio.sleep(self.latency())
                answer = await self._answer(request, resource, form)
            finally:
                f.open -= 1
            if answer.status == 201:
                f.accepted += 1
                f.last_accepted = time.time()
            else:
                f.refused += 1
            return answer

        return handler


async def serve_twilio(latency: Latency) -> Served:
    fake = _CountingTwilio()
    fake.figures, fake.latency = Figures(), latency
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
    await site.start()
    return Served(f"http://127.0.0.1:{runner.addresses[0][1]}", fake.figures, runner)


def twilio_settings(base_url: str) -> dict[str, Any]:
    return {"channel_adapters": "sms=twilio", "twilio_account_sid": fake_twilio.ACCOUNT_SID,
            "twilio_auth_token": fake_twilio.AUTH_TOKEN, "twilio_from_number": "+15005550006",
            "twilio_api_base_url": base_url}


class _CountingTencent(_Counted, FakeTencent):
    """The test server (TC3-HMAC-SHA256 verified independently of the SDK, template variables checked against
    the registered lengths)."""

    async def _answer(self, request: web.Request, raw: bytes, record: dict[str, Any]
                      ) -> tuple[int, dict[str, Any]]:
        status, body = await super()._answer(request, raw, record)
        ok = sum(1 for s in body.get("Response", {}).get("SendStatusSet", ()) if s.get("Code") == "Ok")
        if ok:
            self.figures.accepted += ok
            self.figures.last_accepted = time.time()
        else:
            self.figures.refused += 1
        return status, body


async def serve_tencent(latency: Latency) -> Served:
    fake = _CountingTencent(templates=dict(fake_tencent.REGISTERED), latency=latency)
    fake.figures = Figures()
    runner = await fake_tencent.start(fake)
    return Served(fake.base_url, fake.figures, runner)


def tencent_settings(base_url: str) -> dict[str, Any]:
    return {"channel_adapters": "sms=tencent", "tencent_secret_id": fake_tencent.SECRET_ID,
            "tencent_secret_key": fake_tencent.SECRET_KEY, "tencent_sms_sdk_app_id": fake_tencent.SDK_APP_ID,
            "tencent_sms_sign_name": fake_tencent.SIGN_NAME, "tencent_sms_templates": fake_tencent.TEMPLATES,
            "tencent_sms_endpoint": base_url}


PROVIDERS: dict[str, BenchProvider] = {
    "aliyun": BenchProvider("aliyun", serve_aliyun, aliyun_settings,
                            "Aliyun SendBatchSms via alibabacloud-dysmsapi20170525, ≤100 numbers per call"),
    "tencent": BenchProvider("tencent", serve_tencent, tencent_settings,
                             "Tencent SendSms via tencentcloud-sdk-python-sms; a personal text (own link) per call"),
    "twilio": BenchProvider("twilio", serve_twilio, twilio_settings,
                            "Twilio Messages.create via the twilio library, one call per SMS"),
}
