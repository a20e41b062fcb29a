"""The link: page, form and JSON acknowledgment, feedback, unknown/expired tokens, rate limit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.acknowledgment.conftest import acks, issue, ledger_actions, lift, notice_of, reload, token_for
from tests.conftest import REDIS_KEYSPACE
from warning_service.acknowledgment.models import Feedback
from warning_service.acknowledgment.ratelimit import BadTokenLimiter
from warning_service.notice.models import Notice
from warning_service.notice.tokens import link_key, make_token
from warning_service.person.models import Person

GRID = "33108100100101"
JSON = {"Accept": "application/json"}


@pytest.fixture
async def grid_notice(runtime, db, tree):
    wid = await issue(runtime, targets=[GRID])
    return await notice_of(db, wid, tree.person(GRID, "grid_responsible"))


async def test_page_shows_the_warning_and_a_large_button(client, settings, grid_notice, db):
    r = await client.get(f"/a/{token_for(settings, grid_notice.id)}")
    assert r.status_code == 200
    html = r.text
    wanted = ("台风红色预警", "#c62828", "确认收到", "防御指南", "台风“烟花”预计今夜登陆", "请于", "前确认")
    for text in wanted:
        assert text in html, text
    assert 'id="ack-button"' in html
    assert r.headers["referrer-policy"] == "no-referrer" and r.headers["cache-control"] == "no-store"
    async with db.session() as s:
        person = await s.get(Person, grid_notice.person_id)
    # nothing about the person beyond the area they answer for
    assert person.name not in html and person.phone[-8:] not in html


async def test_form_post_acknowledges_and_shows_the_feedback_form(client, settings, grid_notice, db, clock):
    token = token_for(settings, grid_notice.id)
    r = await client.post(f"/a/{token}", data={})
    assert r.status_code == 303 and r.headers["location"] == f"/a/{token}?done=1"
    page = await client.get(r.headers["location"])
    assert "已确认收到" in page.text and 'id="feedback-form"' in page.text
    assert 'id="ack-button"' not in page.text
    rows = await acks(db, grid_notice.id)
    assert [(a.path, a.source) for a in rows] == [("link", "203.0.113.7")]
    assert (await reload(db, Notice, grid_notice.id)).state == "acknowledged"


async def test_json_post_acknowledges_and_a_repeat_is_told_it_succeeded(client, settings, grid_notice, db,
                                                                        clock):
    token = token_for(settings, grid_notice.id)
    r = await client.post(f"/a/{token}", json={})
    assert r.status_code == 200 and r.json() == {"status": "acknowledged", "late": False,
                                                 "acknowledged_at": clock.now().isoformat()}
    first = clock.now()
    clock.advance(5)
    r2 = await client.post(f"/a/{token}", headers=JSON)
    # Told when the first answer was recorded, and nothing more written.
    assert r2.status_code == 200 and r2.json() == {"status": "already_acknowledged", "late": False,
                                                   "acknowledged_at": first.isoformat()}
    assert len(await acks(db)) == 1 and len(await ledger_actions(db, "ack.recorded")) == 1


async def test_answer_after_the_deadline_says_late(client, settings, grid_notice, clock):
    clock.advance(timedelta(minutes=10))
    page = await client.get(f"/a/{token_for(settings, grid_notice.id)}")
    assert "已超过确认时限" in page.text
    r = await client.post(f"/a/{token_for(settings, grid_notice.id)}", json={})
    assert r.json()["late"] is True


async def test_feedback_can_be_given_and_amended_by_form_and_json(client, settings, grid_notice, db, clock):
    token = token_for(settings, grid_notice.id)
    early = await client.post(f"/a/{token}/feedback", json={"at_post": True})
    assert early.status_code == 409 and early.json()["detail"]["message_zh"].startswith("请先确认")
    await client.post(f"/a/{token}", json={})
    r = await client.post(f"/a/{token}/feedback", data={"at_post": "yes", "villages_affected": "3",
                                                        "people_evacuated": "120", "note": "已转移<到>礼堂"})
    assert r.status_code == 303 and r.headers["location"] == f"/a/{token}?saved=1"
    page = await client.get(r.headers["location"])
    assert "反馈已保存" in page.text and 'value="120"' in page.text
    assert "已转移&lt;到&gt;礼堂" in page.text  # autoescaped
    clock.advance(300)
    r = await client.post(f"/a/{token}/feedback", json={"people_evacuated": 150})
    assert r.status_code == 200 and r.json()["feedback"]["people_evacuated"] == 150
    f = await _feedback(db, grid_notice.id)
    assert (f.at_post, f.villages_affected, f.people_evacuated, f.note) == (True, 3, 150, "已转移<到>礼堂")
    bad = await client.post(f"/a/{token}/feedback", data={"people_evacuated": "很多"})
    assert bad.status_code == 422 and "反馈内容无效" in bad.text
    assert len(await ledger_actions(db, "feedback.recorded")) == 2


async def _feedback(db, notice_id):
    from sqlalchemy import select

    async with db.session() as s:
        return (await s.execute(select(Feedback).where(Feedback.notice_id == notice_id))).scalar_one()


@pytest.mark.parametrize("token", ["nonsense", "AAAAAAAAAAAAAAAAAAAAAAAAAAA", "x" * 200, "%E4%BD%A0"])
async def test_unknown_or_forged_token_is_a_404_page(client, tree, token):
    r = await client.get(f"/a/{token}")
    assert r.status_code == 404 and "链接无效" in r.text
    assert (await client.post(f"/a/{token}", json={})).status_code == 404


async def test_token_signed_with_another_key_is_refused(client, settings, grid_notice, db):
    forged = make_token(grid_notice.id, key=link_key("some-other-secret-key"))
    assert (await client.post(f"/a/{forged}", data={})).status_code == 404
    assert await acks(db) == []


async def test_well_formed_token_for_a_missing_notice_is_404(client, settings, tree):
    assert (await client.get(f"/a/{token_for(settings, 424242)}")).status_code == 404


async def test_lifted_warning_still_shows_its_page_without_a_button(client, settings, runtime, grid_notice,
                                                                  db, clock):
    await lift(runtime, grid_notice.warning_id)
    clock.advance(timedelta(hours=3))
    token = token_for(settings, grid_notice.id)
    page = await client.get(f"/a/{token}")
    assert page.status_code == 200 and "该预警已解除" in page.text and 'id="ack-button"' not in page.text
    r = await client.post(f"/a/{token}", data={})
    assert r.status_code == 303
    assert "该预警已解除" in (await client.get(r.headers["location"])).text
    j = await client.post(f"/a/{token}", json={})
    assert j.status_code == 409 and j.json()["detail"]["reason"] == "lifted"
    assert await acks(db) == []


async def test_link_expires_after_the_grace_period(client, settings, runtime, grid_notice, db, clock):
    token = token_for(settings, grid_notice.id)
    await client.post(f"/a/{token}", json={})
    await lift(runtime, grid_notice.warning_id)
    clock.advance(timedelta(hours=settings.ack_link_grace_hours) - timedelta(minutes=1))
    assert (await client.post(f"/a/{token}/feedback", json={"at_post": True})).status_code == 200
    clock.advance(timedelta(minutes=2))
    r = await client.get(f"/a/{token}")
    assert r.status_code == 410 and "链接已过期" in r.text
    assert (await client.post(f"/a/{token}", data={})).status_code == 410
    assert (await client.post(f"/a/{token}/feedback", json={"at_post": False})).status_code == 410
    assert (await client.get(f"/a/{token}", headers=JSON)).json()["detail"]["code"] == "gone"


async def test_repeated_bad_tokens_from_one_address_get_429_but_good_links_still_work(
        client, settings, grid_notice, db, clock):
    for _ in range(settings.ack_bad_token_per_minute):
        assert (await client.get("/a/not-a-token")).status_code == 404
    r = await client.get("/a/not-a-token")
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    # a real link from the same address is never refused
    good = await client.post(f"/a/{token_for(settings, grid_notice.id)}", json={})
    assert good.status_code == 200 and good.json()["status"] == "acknowledged"
    clock.advance(61)
    assert (await client.get("/a/not-a-token")).status_code == 404


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_bad_token_limiter_counts_per_address_per_minute(backend, redis_client, clock):
    if backend == "redis" and redis_client is None:
        pytest.skip("TEST_REDIS_URL not set")
    lim = BadTokenLimiter(per_minute=3, redis=redis_client if backend == "redis" else None,
                          prefix=f"{REDIS_KEYSPACE}test:{backend}")
    now = clock.now()
    assert [await lim.hit("198.51.100.1", now) for _ in range(4)] == [False, False, False, True]
    assert await lim.hit("198.51.100.2", now) is False
    assert await lim.hit("198.51.100.1", now + timedelta(seconds=60)) is False


async def test_notice_state_is_unchanged_by_a_page_view(client, settings, grid_notice, db):
    await client.get(f"/a/{token_for(settings, grid_notice.id)}")
    assert (await reload(db, Notice, grid_notice.id)).state == "pending"
    assert await acks(db) == []


async def test_answer_is_sealed_into_the_ledger_with_its_details(client, settings, grid_notice, db):
    from sqlalchemy import select

    from warning_service.ledger import service as ledger
    from warning_service.ledger.models import LedgerEntry

    await client.post(f"/a/{token_for(settings, grid_notice.id)}", json={})
    key = ledger.ledger_key(settings.secret_key.get_secret_value())
    async with db.session() as s:
        assert await ledger.seal(s, key=key) >= 1
    async with db.session() as s:
        assert (await ledger.verify(s, key=key)).ok
        entry = (await s.execute(select(LedgerEntry).where(LedgerEntry.action == "ack.recorded"))).scalar_one()
    assert (entry.actor, entry.subject_type, entry.subject_id) == (
        f"person:{grid_notice.person_id}", "notice", str(grid_notice.id))
    assert entry.details == {"notice_id": grid_notice.id, "warning_id": grid_notice.warning_id,
                             "person_id": grid_notice.person_id, "round": 1, "path": "link", "late": False,
                             "source": "203.0.113.7", "raw_input": None}
