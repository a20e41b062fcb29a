from __future__ import annotations

from sqlalchemy import select

from channels.base import sms_segments
from tests.early_warning.conftest import red_typhoon
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.messages import render_outbox
from warning_service.notice.tokens import link_key, parse_token


async def outbox(db, wid):
    async with db.session() as s:
        return (await s.execute(select(OutboxMessage).where(OutboxMessage.warning_id == wid)
                                .order_by(OutboxMessage.id))).scalars().all()


async def test_sms_carries_sign_time_action_hazard_level_area_and_answer(client, duty, db, tree, settings, clock):
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001001"]))
    rows = await outbox(db, r.json()["id"])
    async with db.session() as s:
        msgs = await render_outbox(s, rows=rows, settings=settings, now=clock.now())
    sms = next(msgs[m.id] for m in rows if m.channel == "sms")
    assert sms.body.startswith("【温岭防指】转发温岭市气象台:16:00发布太平街道横湖村台风红色预警:")
    for part in ("请16:03前回1确认 http://testserver/a/", "立即转移"):
        assert part in sms.body, part
    assert "温岭市防汛防台抗旱指挥部" not in sms.body and sms_segments(sms.body) == 2
    token = sms.body.split("/a/")[1].split()[0]
    assert parse_token(token, key=link_key(settings.secret_key.get_secret_value())) == int(sms.metadata["notice_id"])
    assert int(sms.metadata["segments"]) == sms_segments(sms.body) > 1
    email = next(msgs[m.id] for m in rows if m.channel == "email")
    assert email.subject and "台风红色预警" in email.subject
    assert email.html and "确认收到" in email.html and "<html" in email.html
    broadcast = next(msgs[m.id] for m in rows if m.channel == "broadcast")
    assert "各位村民请注意" in broadcast.body and "/a/" not in broadcast.body and broadcast.metadata["repeat"] == "3"


async def test_second_open_warning_asks_for_its_code(client, duty, db, tree, settings, clock):
    await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001001"]))
    r = await client.post("/api/v1/warnings", headers=duty, json={
        "hazard": "rainstorm", "level": "red", "description": "特大暴雨。", "targets": ["331081001001"]})
    rows = [m for m in await outbox(db, r.json()["id"]) if m.channel == "sms"]
    async with db.session() as s:
        msgs = await render_outbox(s, rows=rows, settings=settings, now=clock.now())
    assert all("回11确认" in m.body for m in msgs.values())


async def test_exercise_is_marked_as_a_drill(client, duty, db, tree, settings, clock):
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001001"], status="exercise"))
    rows = await outbox(db, r.json()["id"])
    async with db.session() as s:
        msgs = await render_outbox(s, rows=rows, settings=settings, now=clock.now())
    assert all((m.subject or m.body).startswith("【演练】") for m in msgs.values())


async def test_a_broken_template_still_sends_a_plain_message(client, duty, db, tree, settings, tmp_path, clock):
    import shutil

    shutil.copytree(settings.templates_dir, tmp_path / "t")
    (tmp_path / "t" / "sms" / "default.j2").write_text("{{ w.no_such_field }}", encoding="utf-8")
    broken = settings.model_copy(update={"templates_dir": tmp_path / "t"})
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001001"]))
    rows = [m for m in await outbox(db, r.json()["id"]) if m.channel == "sms"]
    async with db.session() as s:
        msgs = await render_outbox(s, rows=rows, settings=broken, now=clock.now())
    assert all("台风红色预警" in m.body and "/a/" in m.body for m in msgs.values())


def test_segments_count_chinese_as_ucs2():
    assert sms_segments("a" * 160) == 1 and sms_segments("a" * 161) == 2
    assert sms_segments("台" * 70) == 1 and sms_segments("台" * 71) == 2 and sms_segments("台" * 134) == 2


