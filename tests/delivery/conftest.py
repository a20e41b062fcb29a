"""Delivery fixtures: a small tree with people and duty officers, warnings issued through the API, and
helpers to read the outbox and attempts back."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from channels.base import Adapter
from channels.registry import ChannelRegistry
from tests.factories import build_tree, login, make_user
from warning_service.db import Database
from warning_service.delivery.models import DeliveryAttempt, Notice, OutboxMessage
from warning_service.runtime import Runtime


@pytest.fixture
async def tree(db, clock):
    t = await build_tree(db, now=clock.now())
    await make_user(db, username="wl_duty", role="duty_officer", region="331081", now=clock.now())
    await make_user(db, username="lh_duty", role="duty_officer", region="331082", now=clock.now())
    await make_user(db, username="wl_audit", role="auditor", region="331081", now=clock.now())
    return t


@pytest.fixture
async def duty(client, tree) -> dict[str, str]:
    return await login(client, "wl_duty")


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


__all__ = ["ChannelRegistry", "attempts", "issue", "notices", "outbox", "status_counts", "use"]
