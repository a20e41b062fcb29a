from __future__ import annotations

import pytest
from pydantic import ValidationError

from warning_service.config import Settings, async_database_url


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
