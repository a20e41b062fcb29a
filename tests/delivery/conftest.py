"""Delivery fixtures: a small tree with people and duty officers, warnings issued through the API, and
helpers to read the outbox and attempts back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from channels.base import Adapter
from channels.twilio_common import TwilioAdapter, TwilioConfig
from tests.conftest import make_settings
from tests.delivery.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from warning_service.db import Database
from warning_service.delivery.models import DeliveryAttempt, OutboxMessage
from warning_service.notice.models import Notice
from warning_service.runtime import Runtime

FROM_NUMBER = "+15005550006"


@pytest.fixture
def settings(db: Database):
    """Test settings with a Twilio account, so status callbacks can be signed and verified."""
    return make_settings(db, twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                         twilio_auth_tokens_previous="previous-token-1", twilio_from_number=FROM_NUMBER)


@pytest.fixture
async def twilio(runtime: Runtime, fake_twilio: FakeTwilio) -> AsyncIterator[TwilioAdapter]:
    """The real Twilio adapter serving sms and voice, pointed at the local Twilio-speaking server.

    Its timeout is generous: on a loaded machine the local server can take seconds to answer, and a test that
    means to time out says so with its own adapter.
    """
    adapter = TwilioAdapter(TwilioConfig(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=FROM_NUMBER,
                                         api_base_url=fake_twilio.base_url, timeout=15.0))
    use(runtime, adapter, ("sms", "voice"))
    yield adapter
    await adapter.aclose()


async def issue(client: httpx.AsyncClient, headers: dict[str, str], *, targets: list[str], level: str = "red",
                hazard: str = "typhoon", **extra: Any) -> int:
    r = await client.post("/api/v1/warnings", headers=headers, json={
        "hazard": hazard, "level": level, "description": "台风“烟花”预计今夜登陆,最大风力14级。",
        "targets": targets, **extra})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def use(runtime: Runtime, adapter: Adapter, channels: tuple[str, ...] = ("sms", "voice", "email", "broadcast")
        ) -> None:
    """Serve `channels` with `adapter` in the test runtime."""
    for c in channels:
        runtime.channels.replace(c, adapter)  # type: ignore[union-attr]


async def outbox(db: Database, **where: Any) -> list[OutboxMessage]:
    async with db.session() as s:
        q = select(OutboxMessage).order_by(OutboxMessage.id)
        for k, v in where.items():
            q = q.where(getattr(OutboxMessage, k) == v)
        return list((await s.execute(q)).scalars().all())


async def attempts(db: Database, **where: Any) -> list[DeliveryAttempt]:
    async with db.session() as s:
        q = select(DeliveryAttempt).order_by(DeliveryAttempt.id)
        for k, v in where.items():
            q = q.where(getattr(DeliveryAttempt, k) == v)
        return list((await s.execute(q)).scalars().all())


async def notices(db: Database, warning_id: int) -> list[Notice]:
    async with db.session() as s:
        q = select(Notice).where(Notice.warning_id == warning_id).order_by(Notice.id)
        return list((await s.execute(q)).scalars().all())


async def status_counts(db: Database, warning_id: int | None = None) -> dict[str, int]:
    async with db.session() as s:
        q = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        if warning_id is not None:
            q = q.where(OutboxMessage.warning_id == warning_id)
        return {k: v for k, v in (await s.execute(q)).all()}


def signed_post_args(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> dict[str, Any]:
    """What Twilio would send: the form and X-Twilio-Signature over the public URL."""
    from twilio.request_validator import RequestValidator

    return {"data": params, "headers": {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params)}}

