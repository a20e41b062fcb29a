"""SMS replies: what people type, which notices it means, what they are told, and signatures."""

from __future__ import annotations

import uuid
from xml.etree import ElementTree

import pytest

from tests.acknowledgment.conftest import acks, issue, notice_of, phone_of, post_signed, reload
from warning_service.acknowledgment.sms_reply import Reply, parse_reply
from warning_service.early_warning.models import EarlyWarning
from warning_service.notice.models import Notice
from warning_service.person.models import Person

GRID = "33108100100101"
VILLAGE = "331081001001"
SMS = "/webhooks/twilio/sms"


@pytest.mark.parametrize("text", [
    "1", "１", " 1 ", "1。", "【1】", "收到", "收到!", "收到！", "已收到，谢谢", "确认", "确认收到", "好",
    "好的", "ok", "OK", "Ok.", "ＯＫ", "１ 收到", "嗯,收到了", "\n收到\n", "回复1确认"])
def test_what_people_type_to_say_yes_is_understood(text):
    assert parse_reply(text) == Reply("ack")


@pytest.mark.parametrize(("text", "codes"), [
    ("12", (12,)), ("１２", (12,)), (" 12 确认", (12,)), ("确认12", (12,)), ("12、13", (12, 13)),
    ("1 12", (12,)), ("回复 12 确认", (12,)), ("12 不对", None)])
def test_codes_are_read_from_the_reply(text, codes):
    assert parse_reply(text) == (Reply("codes", codes) if codes else Reply("unclear"))


@pytest.mark.parametrize("text", ["全部", "全部确认", "ALL", "all!", "确认全部", "全部收到"])
def test_all_means_every_open_notice(text):
    assert parse_reply(text) == Reply("all")


@pytest.mark.parametrize("text", ["", "   ", "。", "未收到", "没收到", "不好", "不确认", "你好", "谢谢",
                                  "收到个鬼", "12345678901", "stop"])
def test_anything_else_is_not_taken_as_an_answer(text):
    assert parse_reply(text) == Reply("unclear")


def message_text(xml: str) -> str:
    root = ElementTree.fromstring(xml)
    return "".join(m.text or "" for m in root.iter("Message"))


async def reply(client, settings, phone: str, body: str, **extra) -> str:
    # Every SMS Twilio receives has its own sid; a repeated sid is a replay (tests/acknowledgment/test_replay.py).
    form = {"From": phone, "To": "+15005550006", "Body": body, "MessageSid": "SM" + uuid.uuid4().hex, **extra}
    r = await post_signed(client, settings, SMS, form)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/xml")
    return message_text(r.text)


@pytest.fixture
async def grid(runtime, db, tree):
    pid = tree.person(GRID, "grid_responsible")
    return pid, await phone_of(db, pid)


@pytest.mark.parametrize("body", ["1", "１", "收到！", " ok "])
async def test_reply_acknowledges_the_only_open_notice(client, settings, runtime, db, grid, body):
    pid, phone = grid
    wid = await issue(runtime, targets=[GRID])
    text = await reply(client, settings, phone, body)
    assert text.startswith("已确认收到:台风红色预警。") and "/a/" in text
    n = await notice_of(db, wid, pid)
    rows = await acks(db, n.id)
    assert [(a.path, a.raw_input, a.source) for a in rows] == [("sms_reply", body, phone)]
    assert (await reload(db, Notice, n.id)).state == "acknowledged"


async def test_a_repeat_is_told_it_was_already_acknowledged(client, settings, runtime, db, grid):
    pid, phone = grid
    await issue(runtime, targets=[GRID])
    await reply(client, settings, phone, "1")
    text = await reply(client, settings, phone, "收到")
    assert "此前已确认" in text
    assert len(await acks(db)) == 1


async def test_two_open_notices_each_answered_by_its_code_and_a_bare_1_takes_what_is_left(
        client, settings, runtime, db, grid, clock):
    pid, phone = grid
    typhoon = await issue(runtime, targets=[GRID])
    clock.advance(60)
    rain = await issue(runtime, targets=[GRID], hazard="rainstorm")
    codes = {}
    async with db.session() as s:
        for wid in (typhoon, rain):
            codes[wid] = (await s.get(EarlyWarning, wid)).reply_code
    assert codes[typhoon] != codes[rain]
    t_notice, r_notice = await notice_of(db, typhoon, pid), await notice_of(db, rain, pid)

    text = await reply(client, settings, phone, f"{codes[typhoon]} 确认")
    assert text.startswith("已确认收到:台风红色预警。")
    assert "您还有1条预警待确认:暴雨红色预警" in text
    assert [a.notice_id for a in await acks(db)] == [t_notice.id]

    text = await reply(client, settings, phone, "1")  # the rainstorm, the only one left
    assert text.startswith("已确认收到:暴雨红色预警。")
    assert sorted(a.notice_id for a in await acks(db)) == sorted([t_notice.id, r_notice.id])


async def test_bare_1_with_two_open_answers_the_earliest_deadline_and_lists_the_other(
        client, settings, runtime, db, grid, clock):
    pid, phone = grid
    typhoon = await issue(runtime, targets=[GRID])
    clock.advance(60)
    rain = await issue(runtime, targets=[GRID], hazard="rainstorm")
    text = await reply(client, settings, phone, "１")
    assert text.startswith("已确认收到:台风红色预警。") and "您还有1条预警待确认:暴雨红色预警" in text
    assert [a.notice_id for a in await acks(db)] == [(await notice_of(db, typhoon, pid)).id]
    assert (await reload(db, Notice, (await notice_of(db, rain, pid)).id)).state == "pending"


async def test_bare_1_answers_the_real_warning_before_a_later_exercise(client, settings, runtime, db, grid, clock):
    pid, phone = grid
    real = await issue(runtime, targets=[GRID])
    clock.advance(60)
    drill = await issue(runtime, targets=[GRID], hazard="rainstorm", status="exercise")
    text = await reply(client, settings, phone, "1")
    assert text.startswith("已确认收到:台风红色预警。") and "【演练】暴雨红色预警" in text
    assert [a.notice_id for a in await acks(db)] == [(await notice_of(db, real, pid)).id]
    assert (await reload(db, Notice, (await notice_of(db, drill, pid)).id)).state == "pending"


async def test_all_acknowledges_every_open_notice(client, settings, runtime, db, grid, clock):
    pid, phone = grid
    wids = [await issue(runtime, targets=[GRID], hazard=h) for h in ("typhoon", "rainstorm", "flood")]
    text = await reply(client, settings, phone, "全部")
    assert text.startswith("已确认收到:") and all(w in text for w in ("台风", "暴雨", "洪水"))
    got = {a.notice_id for a in await acks(db)}
    assert got == {(await notice_of(db, w, pid)).id for w in wids}


async def test_a_code_matching_nothing_open_says_so_and_lists_what_is_open(client, settings, runtime, db,
                                                                          grid):
    _, phone = grid
    await issue(runtime, targets=[GRID])
    await issue(runtime, targets=[GRID], hazard="rainstorm")
    text = await reply(client, settings, phone, "99")
    assert "编号 99 没有您待确认的预警" in text and "回复 全部" in text
    assert await acks(db) == []


async def test_an_unclear_reply_changes_nothing_and_says_what_to_send(client, settings, runtime, db, grid):
    _, phone = grid
    await issue(runtime, targets=[GRID])
    text = await reply(client, settings, phone, "未收到")
    assert text.startswith("未能识别您的回复。") and "回复 1" in text
    assert await acks(db) == []


async def test_unknown_number_gets_a_polite_reply_and_changes_nothing(client, settings, runtime, db, grid):
    await issue(runtime, targets=[GRID])
    text = await reply(client, settings, "+8613712345678", "1")
    assert "未登记" in text
    assert await acks(db) == []


async def test_a_phone_shared_by_two_persons_answers_for_both(client, settings, runtime, db, grid, tree):
    pid, phone = grid
    async with db.session() as s:
        # the village's responsible person also holds the grid and carries one phone
        village = await s.get(Person, tree.person(VILLAGE, "village_responsible"))
        village.phone = phone
    wid = await issue(runtime, targets=[VILLAGE])
    text = await reply(client, settings, phone, "收到")
    assert text.startswith("已确认收到:台风红色预警。")
    got = {a.notice_id for a in await acks(db)}
    assert got == {(await notice_of(db, wid, pid)).id, (await notice_of(db, wid, village.id)).id}


async def test_inactive_person_is_not_matched(client, settings, runtime, db, grid):
    pid, phone = grid
    await issue(runtime, targets=[GRID])
    async with db.session() as s:
        (await s.get(Person, pid)).active = False
    assert "未登记" in await reply(client, settings, phone, "1")
    assert await acks(db) == []


@pytest.mark.parametrize("case", ["missing", "forged", "tampered"])
async def test_forged_or_missing_signature_is_refused_and_nothing_written(client, settings, runtime, db, grid,
                                                                          case):
    _, phone = grid
    await issue(runtime, targets=[GRID])
    form = {"From": phone, "Body": "1"}
    if case == "missing":
        r = await post_signed(client, settings, SMS, form, signed=False)
    elif case == "forged":
        r = await post_signed(client, settings, SMS, form, sign_with="somebody-elses-token")
    else:
        from tests.acknowledgment.conftest import signature

        sig = signature(settings, SMS, {"From": "+8613700000000", "Body": "1"})
        r = await client.post(SMS, data=form, headers={"X-Twilio-Signature": sig})
    assert r.status_code == 403
    assert await acks(db) == []
