"""The delivery log of a notice, in scope only, and a warning's delivery progress with its time to finish."""

from __future__ import annotations

from channels.base import SendResult
from channels.fake import FakeAdapter
from tests.conftest import make_settings
from tests.delivery.conftest import issue, notices, outbox, use
from tests.factories import login
from warning_service.delivery.dispatcher import dispatch_tick
from warning_service.delivery.service import estimate_seconds, warning_delivery_stats


async def test_duty_officer_and_auditor_in_scope_read_every_attempt(client, duty, db, runtime, clock):
    use(runtime, FakeAdapter(script=[SendResult.transient("twilio_20429", "Too Many Requests")], delivered=False),
        ("sms",))
    wid = await issue(client, duty, targets=["33108100100101"])
    await dispatch_tick(runtime)
    clock.advance(60)
    await dispatch_tick(runtime)
    [n] = await notices(db, wid)
    for who in ("wl_duty", "wl_audit"):
        r = await client.get(f"/api/v1/notices/{n.id}/attempts", headers=await login(client, who))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["notice_id"] == n.id and body["warning_id"] == wid
        sms = [m for m in body["messages"] if m["channel"] == "sms"]
        assert [(m["status"], m["attempts"]) for m in sms] == [("sent", 2)]
        tries = [a for a in body["attempts"] if a["outbox_id"] == sms[0]["id"]]
        assert [(a["status"], a["error_code"], a["retryable"]) for a in tries] == [
            ("failed", "twilio_20429", True), ("sent", None, False)]


async def test_the_delivery_log_looks_absent_outside_scope_and_is_refused_without_login(client, duty, db, runtime):
    wid = await issue(client, duty, targets=["33108100100101"])
    [n] = await notices(db, wid)
    r = await client.get(f"/api/v1/notices/{n.id}/attempts", headers=await login(client, "lh_duty"))
    assert r.status_code == 404 and r.json()["detail"]["code"] == "not_found"
    assert (await client.get(f"/api/v1/notices/{n.id}/attempts")).status_code == 401
    r = await client.get("/api/v1/notices/999999/attempts", headers=duty)
    assert r.status_code == 404


async def test_warning_progress_counts_by_channel_and_estimates_time_to_finish(client, duty, db, runtime,
                                                                               settings):
    settings.channel_rate_limits = "sms=2,email=4,broadcast=1000"
    wid = await issue(client, duty, targets=["331081001"])  # 7 people: 7 sms, 7 email, 2 broadcast
    async with db.session() as s:
        stats = await warning_delivery_stats(s, warning_id=wid, settings=settings)
    assert stats["by_channel"]["sms"]["queued"] == 7 and stats["by_channel"]["email"]["queued"] == 7
    assert stats["total"]["queued"] == 16 and stats["remaining"] == 16
    assert stats["eta_seconds"] == 3.5  # the slowest bucket: 7 SMS at 2/s

    other = await issue(client, duty, targets=["331081002"])  # queued after, same priority: behind us
    async with db.session() as s:
        assert (await warning_delivery_stats(s, warning_id=wid, settings=settings))["eta_seconds"] == 3.5
        later = await warning_delivery_stats(s, warning_id=other, settings=settings)
    assert later["eta_seconds"] == (7 + 4) / 2  # its own 4 SMS wait behind the first warning's 7

    use(runtime, FakeAdapter(delivered=False))
    await dispatch_tick(runtime)
    async with db.session() as s:
        done = await warning_delivery_stats(s, warning_id=wid, settings=settings)
    assert done["total"]["sent"] == 16 and done["remaining"] == 0 and done["eta_seconds"] == 0
    assert set(done["by_channel"]["sms"]) == {"queued", "sending", "sent", "delivered", "undelivered", "failed",
                                               "cancelled"}
    assert len(await outbox(db, warning_id=wid)) == 16


def test_estimate_uses_the_adapter_limit_when_one_is_set(db):
    s = make_settings(db, channel_adapters="sms=console,email=console", channel_rate_limits="sms=1,console=100")
    # console's own limit applies to every channel it serves, shared
    assert estimate_seconds({"sms": 100, "email": 100}, s) == 2.0
