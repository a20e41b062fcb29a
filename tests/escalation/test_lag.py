"""The escalation lag operators watch: /readyz and /metrics show how overdue the oldest notice is."""

from __future__ import annotations

from datetime import timedelta

from tests.escalation.conftest import VILLAGE, issue
from warning_service.escalation.service import escalation_tick

MIN = timedelta(minutes=1)


async def test_readyz_and_metrics_show_the_oldest_overdue_notice_until_the_sweep_catches_up(
        client, runtime, db, clock, settings, tree, town_top):
    t0 = clock.now()
    await issue(db, settings, clock, targets=[VILLAGE], policy=town_top)
    assert (await client.get("/readyz")).json()["oldest_overdue_notice_seconds"] == 0  # nothing due yet
    clock.set(t0 + 10 * MIN)  # the worker was down: deadlines (at 3 minutes) are 7 minutes overdue
    assert (await client.get("/readyz")).json()["oldest_overdue_notice_seconds"] == 420
    assert "warning_service_oldest_overdue_notice_seconds 420" in (await client.get("/metrics")).text
    await escalation_tick(runtime)
    assert (await client.get("/readyz")).json()["oldest_overdue_notice_seconds"] == 0
    assert "warning_service_oldest_overdue_notice_seconds 0" in (await client.get("/metrics")).text
