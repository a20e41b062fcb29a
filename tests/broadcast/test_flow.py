"""A red warning on a village with three loudspeakers, one off line: one signed request to the platform, each
terminal's receipt recorded once, and the village that did not fully play on the board."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from channels.broadcast_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from tests.broadcast.conftest import SECRET, VILLAGE
from tests.delivery.conftest import issue, outbox
from tests.factories import PASSWORD, login
from warning_service.broadcast.models import BroadcastPlay, BroadcastReceipt, Terminal
from warning_service.delivery.dispatcher import dispatch_tick

RECEIPTS = "http://testserver/webhooks/broadcast/receipts"


async def _red_warning(client, duty, runtime) -> int:
    wid = await issue(client, duty, targets=[VILLAGE], level="red")
    await dispatch_tick(runtime)
    return wid


async def _count(db, model) -> int:
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(model))).scalar_one()


async def test_a_red_warning_pushes_one_signed_request_naming_the_villages_terminals(
        client, duty, db, runtime, terminals, simulator, platform) -> None:
    sim, _ = simulator
    wid = await _red_warning(client, duty, runtime)
    [row] = await outbox(db, warning_id=wid, channel="broadcast")
    assert row.status == "sent" and sim.refused == 0
    [task] = sim.requests
    assert task.task_id == row.idempotency_key
    assert task.zone == VILLAGE and task.body["zoneName"] == "横湖村"
    assert task.terminals == ["WL-T-0001", "WL-T-0002", "WL-T-0003"]  # the off-line one too: the platform decides
    assert task.repeat == 3 and task.priority == 1  # red: the policy's three plays, the platform's first priority
    assert "各位村民请注意" in task.text and "红色预警" in task.text
    assert task.callback == RECEIPTS
    assert task.body["playTime"].endswith("+08:00")
    assert task.headers[SIGNATURE_HEADER] and task.headers[TIMESTAMP_HEADER]


async def test_receipts_are_recorded_per_terminal_once_and_the_offline_village_shows_on_the_board(
        client, duty, db, runtime, terminals, simulator, platform) -> None:
    sim, _ = simulator
    wid = await _red_warning(client, duty, runtime)
    answers = await sim.push_receipts()
    assert [a.status_code for a in answers] == [200] and answers[0].json()["recorded"] == 5
    # The platform pushes the same receipts again (its retry after a lost answer): nothing changes.
    again = await sim.push(RECEIPTS, {"receipts": sim.pushed})
    assert again.status_code == 200 and again.json() == {"code": 0, "recorded": 0, "duplicates": 5, "unknown": 0}
    assert await _count(db, BroadcastReceipt) == 5
    async with db.session() as s:
        plays = {p.terminal_ref: p for p in (await s.execute(select(BroadcastPlay))).scalars()}
        offline = (await s.execute(select(Terminal).where(Terminal.platform_id == "WL-T-0003"))).scalar_one()
        seen = (await s.execute(select(Terminal).where(Terminal.platform_id == "WL-T-0001"))).scalar_one()
    assert {k: (p.status, p.repeats) for k, p in plays.items()} == {
        "WL-T-0001": ("finished", 3), "WL-T-0002": ("finished", 3), "WL-T-0003": ("failed", 0)}
    assert plays["WL-T-0003"].error_code == "offline" and not offline.online and seen.last_seen_at is not None
    [row] = await outbox(db, warning_id=wid, channel="broadcast")
    assert row.status == "delivered"

    p = (await client.get(f"/api/v1/broadcast/warnings/{wid}/playback", headers=duty)).json()
    assert (p["villages"], p["villages_not_played"], p["terminals"], p["terminals_played"]) == (1, 1, 3, 2)
    [village] = p["items"]
    assert village["village_name"] == "横湖村" and village["town_name"] == "太平街道" and village["not_played"]
    assert [(t["code"], t["state"], t["error"]) for t in village["terminals"] if t["state"] != "finished"] == [
        ("HH-03", "failed", "offline")]


async def test_the_warning_report_lists_the_village_that_did_not_fully_play(
        client, duty, db, runtime, terminals, simulator, platform) -> None:
    sim, _ = simulator
    wid = await _red_warning(client, duty, runtime)
    await sim.push_receipts()
    audit = await login(client, "wl_audit")
    b = (await client.get(f"/api/v1/reports/warnings/{wid}", headers=audit)).json()["broadcast"]
    assert (b["villages"], b["villages_not_played"], b["terminals_played"], b["terminals"]) == (1, 1, 2, 3)
    [village] = b["not_played"]
    assert [(t["name"], t["state_zh"], t["error_zh"]) for t in village["terminals"] if t["state"] != "finished"] == [
        ("横湖村溪边", "播放失败", "终端离线")]
    client.cookies.clear()
    r = await client.post("/console/login", data={"username": "wl_audit", "password": PASSWORD})
    assert r.status_code == 303
    page = await client.get(f"/console/reports/warnings/{wid}")
    assert page.status_code == 200 and "横湖村溪边(播放失败,终端离线)" in page.text


async def test_a_late_started_receipt_never_undoes_a_finished_play(
        client, duty, db, runtime, terminals, simulator, platform) -> None:
    sim, _ = simulator
    wid = await _red_warning(client, duty, runtime)
    await sim.push_receipts()
    [row] = await outbox(db, warning_id=wid, channel="broadcast")
    late = {"id": "late-1", "task": row.idempotency_key, "terminal": "WL-T-0001", "event": "started", "repeats": 1}
    assert (await sim.push(RECEIPTS, late)).json()["recorded"] == 1
    async with db.session() as s:
        play = (await s.execute(select(BroadcastPlay).where(BroadcastPlay.terminal_ref == "WL-T-0001"))).scalar_one()
    assert (play.status, play.repeats) == ("finished", 3)


async def test_a_receipt_with_a_bad_or_stale_signature_is_refused_and_changes_nothing(
        client, duty, db, runtime, terminals, simulator, platform, clock) -> None:
    sim, _ = simulator
    wid = await _red_warning(client, duty, runtime)
    [row] = await outbox(db, warning_id=wid, channel="broadcast")
    receipt = {"id": "r-1", "task": row.idempotency_key, "terminal": "WL-T-0001", "event": "finished", "repeats": 3}
    forged = await sim.push(RECEIPTS, receipt, secret="not-the-secret")
    assert forged.status_code == 403 and forged.json()["detail"]["message_zh"] == "广播平台签名无效"
    unsigned = await client.post("/webhooks/broadcast/receipts", content=json.dumps(receipt))
    assert unsigned.status_code == 403
    real_now = sim.clock
    sim.clock = lambda: real_now() - 3600  # signed an hour ago: a replay
    stale = await sim.push(RECEIPTS, receipt)
    sim.clock = real_now
    assert stale.status_code == 403
    assert await _count(db, BroadcastReceipt) == 0 and await _count(db, BroadcastPlay) == 0


async def test_receipts_in_the_platforms_own_words_are_mapped_by_settings(
        client, duty, db, runtime, terminals, simulator, platform, settings) -> None:
    sim, _ = simulator
    wid = await _red_warning(client, duty, runtime)
    [row] = await outbox(db, warning_id=wid, channel="broadcast")
    settings.broadcast_receipt_fields = "id=eventId,task=taskId,terminal=terminalId,event=playStatus,repeats=playCount"
    settings.broadcast_receipt_events = "finished=DONE,failed=FAIL,started=PLAYING"
    theirs = [{"eventId": 991, "taskId": row.idempotency_key, "terminalId": "WL-T-0002", "playStatus": "DONE",
               "playCount": 3}]
    assert (await sim.push(RECEIPTS, theirs)).json()["recorded"] == 1
    bad = await sim.push(RECEIPTS, [{"eventId": 992, "taskId": row.idempotency_key, "terminalId": "WL-T-0002",
                                     "playStatus": "EXPLODED"}])
    assert bad.status_code == 422 and bad.json()["detail"]["field"].endswith("event")


async def test_a_platform_that_is_down_leaves_the_message_to_be_sent_again_elsewhere_or_later(
        client, duty, db, runtime, terminals, simulator, platform) -> None:
    sim, _ = simulator
    sim.answers = [503]
    wid = await _red_warning(client, duty, runtime)
    [row] = await outbox(db, warning_id=wid, channel="broadcast")
    assert row.status == "queued" and row.error_code == "http_503" and sim.requests == []


async def test_the_lead_secret_must_be_set_for_receipts_to_be_taken(client, settings) -> None:
    settings.broadcast_secret = None
    r = await client.post("/webhooks/broadcast/receipts", content=b"{}", headers={
        SIGNATURE_HEADER: "00", TIMESTAMP_HEADER: "0"})
    assert r.status_code == 403 and "BROADCAST_SECRET" in r.json()["detail"]["message"]


async def test_an_auditor_of_another_county_cannot_see_the_playback(client, tree, duty, runtime, terminals,
                                                                    simulator, platform) -> None:
    wid = await _red_warning(client, duty, runtime)
    lh = await login(client, "lh_duty")
    assert (await client.get(f"/api/v1/broadcast/warnings/{wid}/playback", headers=lh)).status_code == 404
    audit = await login(client, "wl_audit")
    assert (await client.get(f"/api/v1/broadcast/warnings/{wid}/playback", headers=audit)).status_code == 200
    assert SECRET not in (await client.get(f"/api/v1/broadcast/warnings/{wid}/playback", headers=audit)).text
