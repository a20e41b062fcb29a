from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from warning_service.config import Settings, async_database_url
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.models import EarlyWarning


async def test_healthz_and_readyz_report_database(client):
    assert (await client.get("/healthz")).json()["status"] == "ok"
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["database"] == "ok"
    assert "oldest_overdue_notice_seconds" in body


async def test_metrics_are_prometheus_text(client):
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert "warning_service_outbox_queued" in r.text


async def test_metrics_show_this_process_dispatch_totals_by_outcome(client, runtime):
    runtime.counters.add({"delivered": 3, "failed": 1})
    runtime.counters.add({"delivered": 2, "failed": 0})
    text = (await client.get("/metrics")).text
    assert "# TYPE warning_service_dispatched_total counter" in text
    assert 'warning_service_dispatched_total{outcome="delivered"} 5' in text
    assert 'warning_service_dispatched_total{outcome="failed"} 1' in text


def test_placeholder_secret_is_refused_outside_development():
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment="production")  # type: ignore[call-arg]
    Settings(_env_file=None, environment="development")  # type: ignore[call-arg]


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
    ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
    ("sqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
    ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
])
def test_database_urls_map_to_async_drivers(url, expected):
    assert async_database_url(url) == expected


async def _warning_with_sms(db, now, *, status: str, lease_until=None, next_attempt_at=None) -> None:
    async with db.session() as s:
        w = EarlyWarning(identifier="ops-1", sender="温岭市防汛防台抗旱指挥部", sender_code="33108100000000",
                         hazard="typhoon", level="red", status="actual", title="台风红色预警", description="测试",
                         instruction="到岗", issued_at=now, effective_at=now, targets=["331081"], area_desc="温岭市",
                         policy={}, reply_code=1, updated_at=now)
        s.add(w)
        await s.flush()
        s.add(OutboxMessage(warning_id=w.id, kind="alert", channel="sms", address="+8613900000001", status=status,
                            attempts=1, next_attempt_at=next_attempt_at or now, lease_until=lease_until,
                            idempotency_key="ops-1-sms", created_at=now, updated_at=now))


async def test_readyz_fails_while_a_message_sits_in_sending_past_its_lease(client, db, clock):
    now = clock.now()
    await _warning_with_sms(db, now, status="sending", lease_until=now + timedelta(seconds=30))
    r = await client.get("/readyz")
    assert r.status_code == 200 and r.json()["outbox_sending"] == 1
    clock.advance(31)  # the worker died: nobody renews the lease
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["outbox_sending_past_lease"] == 1 and "past their lease" in r.json()["lag"][0]


async def test_readyz_fails_when_the_oldest_due_message_waits_longer_than_allowed(client, db, clock, settings):
    now = clock.now()
    await _warning_with_sms(db, now, status="queued")
    assert (await client.get("/readyz")).status_code == 200
    clock.advance(settings.ready_max_lag_seconds + 1)
    r = await client.get("/readyz")
    assert r.status_code == 503 and "oldest due message" in r.json()["lag"][0]


def test_a_heartbeat_too_slow_for_the_gone_interval_stops_start_up():
    # A worker fences itself 0.6 × the gone interval after its last beat: beats must come well within that.
    with pytest.raises(ValueError, match="DISPATCH_WORKER_GONE_SECONDS must be at least 3"):
        Settings(_env_file=None, dispatch_heartbeat_seconds=2, dispatch_worker_gone_seconds=5)
    assert Settings(_env_file=None, dispatch_heartbeat_seconds=1, dispatch_worker_gone_seconds=5)
