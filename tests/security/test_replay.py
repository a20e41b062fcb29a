"""A captured, validly signed SMS reply or key press replayed later acknowledges nothing."""

from __future__ import annotations

from tests.acknowledgment.conftest import (
    acks,
    issue,
    lift,
    notice_of,
    phone_of,
    post_signed,
    set_notice,
    token_for,
)

GRID = "33108100100101"
SMS = "/webhooks/twilio/sms"


async def test_a_replayed_sms_reply_does_not_answer_a_new_warning(client, settings, runtime, db, tree):
    pid = tree.person(GRID, "grid_responsible")
    phone = await phone_of(db, pid)
    first = await issue(runtime, targets=[GRID])
    form = {"From": phone, "To": "+15005550006", "Body": "1", "MessageSid": "SM" + "a" * 32}
    assert (await post_signed(client, settings, SMS, form)).status_code == 200
    assert len(await acks(db, (await notice_of(db, first, pid)).id)) == 1
    await lift(runtime, first)
    second = await issue(runtime, targets=[GRID])
    r = await post_signed(client, settings, SMS, form)  # the same signed request, captured and replayed
    assert r.status_code == 200 and "<Message>" not in r.text
    assert await acks(db, (await notice_of(db, second, pid)).id) == []


async def test_a_replayed_key_press_does_not_answer_a_reopened_notice(client, settings, runtime, db, tree):
    pid = tree.person(GRID, "grid_responsible")
    wid = await issue(runtime, targets=[GRID])
    notice = await notice_of(db, wid, pid)
    path = f"/webhooks/twilio/voice/gather?t={token_for(settings, notice.id)}&r=0"
    form = {"CallSid": "CA" + "b" * 32, "Digits": "1", "Called": "+8613900000003"}
    assert "已确认" in (await post_signed(client, settings, path, form)).text
    # The warning is re-issued to the same notice (a new round): only a new call's key press may answer it.
    await set_notice(db, notice.id, state="delivered", round=2, acknowledged_at=None)
    await post_signed(client, settings, path, form)
    assert [a.round for a in await acks(db, notice.id)] == [1]
