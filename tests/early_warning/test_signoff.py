"""审核签发: a warning held for a 带班领导's approval sends nothing until approved, and exactly once after."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from capvalidator import Validator
from lxml import etree
from sqlalchemy import func, select, update

from tests.early_warning.conftest import red_typhoon
from tests.factories import login, make_user
from warning_service.auth.models import User
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.cap import NS
from warning_service.early_warning.models import EarlyWarning, WarningTarget
from warning_service.early_warning.policy import load_policy
from warning_service.early_warning.service import expire_due
from warning_service.ledger.models import LedgerPending
from warning_service.notice.models import Notice


@pytest.fixture
async def signoff(runtime, tree, db, clock, tmp_path):
    """Red needs sign-off; leaders of 温岭市 (two), of its town 太平 and of 临海市."""
    f = tmp_path / "policy.toml"
    f.write_text("[levels.red]\nsign_off = true\n", encoding="utf-8")
    runtime.policy = load_policy(f)
    for username, region in (("wl_leader", "331081"), ("wl_leader2", "331081"), ("tp_leader", "331081001"),
                             ("lh_leader", "331082")):
        await make_user(db, username=username, role="leader", region=region, now=clock.now())
    await make_user(db, username="wl_admin", role="admin", region="331081", now=clock.now())


async def count(db, model, *where) -> int:
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def ledger(db, action: str) -> list[LedgerPending]:
    async with db.session() as s:
        return list((await s.execute(select(LedgerPending).where(LedgerPending.action == action)
                                     .order_by(LedgerPending.id))).scalars())


async def submit(client, duty, targets=("331081001",)) -> int:
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(list(targets)))
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "pending" and r.json()["recipient_count"] == 0
    return r.json()["id"]


async def test_a_warning_under_sign_off_is_held_with_no_notice_and_no_message(client, duty, db, signoff):
    wid = await submit(client, duty)
    assert await count(db, Notice, Notice.warning_id == wid) == 0
    assert await count(db, OutboxMessage, OutboxMessage.warning_id == wid) == 0
    assert await count(db, WarningTarget, WarningTarget.warning_id == wid) == 1
    [entry] = await ledger(db, "warning.submitted")
    assert entry.actor == "user:wl_duty" and entry.details["submitted_by"] == "wl_duty"
    assert await ledger(db, "warning.issued") == []
    detail = (await client.get(f"/api/v1/warnings/{wid}", headers=duty)).json()
    assert detail["state"] == "pending" and detail["signoff"]["submitted_by"] == "wl_duty"
    assert detail["recipient_count"] == 0
    cap = await client.get(f"/api/v1/warnings/{wid}/cap", headers=duty)
    assert cap.status_code == 409 and "尚未签发" in cap.json()["detail"]["message_zh"]
    # Nothing to update or lift: it was never sent.
    r = await client.post(f"/api/v1/warnings/{wid}/lift", headers=duty, json={"reason": "x"})
    assert r.status_code == 409 and "待审核" in r.json()["detail"]["message_zh"]


async def test_blue_and_orange_are_sent_at_once_when_only_red_needs_sign_off(client, duty, db, signoff):
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001"], level="orange"))
    assert r.json()["state"] == "active" and r.json()["recipient_count"] > 0


async def test_approval_sends_exactly_the_previewed_count_and_records_both_names(client, duty, db, signoff):
    preview = (await client.post("/api/v1/warnings/preview", headers=duty, json=red_typhoon(["331081001"]))).json()
    wid = await submit(client, duty)
    leader = await login(client, "wl_leader")
    r = await client.post(f"/api/v1/warnings/{wid}/approve", headers=leader)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "active"
    assert r.json()["recipient_count"] == preview["recipient_count"] == 7
    assert await count(db, Notice, Notice.warning_id == wid, Notice.reason == "primary") == 7
    assert await count(db, OutboxMessage, OutboxMessage.warning_id == wid) > 0
    [approved] = await ledger(db, "warning.approved")
    assert approved.actor == "user:wl_leader"
    assert (approved.details["submitted_by"], approved.details["approved_by"]) == ("wl_duty", "wl_leader")
    [issued] = await ledger(db, "warning.issued")
    assert (issued.details["submitted_by"], issued.details["approved_by"], issued.details["recipients"]) == (
        "wl_duty", "wl_leader", 7)
    cap = await client.get(f"/api/v1/warnings/{wid}/cap", headers=duty)
    ok, why = Validator(cap.content).schema()
    assert ok, why
    assert etree.fromstring(cap.content).findtext(f"{{{NS}}}note") == "拟稿:wl_duty;签发:wl_leader"


async def test_deadlines_count_from_the_approval_not_the_submission(client, duty, db, signoff, clock):
    wid = await submit(client, duty)
    clock.advance(600)
    leader = await login(client, "wl_leader")
    await client.post(f"/api/v1/warnings/{wid}/approve", headers=leader)
    async with db.session() as s:
        w = await s.get(EarlyWarning, wid)
        deadlines = (await s.execute(select(Notice.deadline).where(Notice.warning_id == wid))).scalars().all()
    assert w.issued_at == clock.now()
    assert deadlines and all((d - clock.now()).total_seconds() == 180 for d in deadlines)


async def test_approving_twice_is_a_conflict_and_sends_nothing_more(client, duty, db, signoff):
    wid = await submit(client, duty)
    leader, other = await login(client, "wl_leader"), await login(client, "wl_leader2")
    assert (await client.post(f"/api/v1/warnings/{wid}/approve", headers=leader)).status_code == 200
    notices, messages = (await count(db, Notice, Notice.warning_id == wid),
                         await count(db, OutboxMessage, OutboxMessage.warning_id == wid))
    for who in (leader, other):
        r = await client.post(f"/api/v1/warnings/{wid}/approve", headers=who)
        assert r.status_code == 409
        assert r.json()["detail"]["message_zh"] == "该预警已由wl_leader审核签发并已发出,不能重复签发"
        assert "already approved by wl_leader" in r.json()["detail"]["message"]
    r = await client.post(f"/api/v1/warnings/{wid}/reject", headers=other, json={"reason": "晚了"})
    assert r.status_code == 409
    assert (await count(db, Notice, Notice.warning_id == wid),
            await count(db, OutboxMessage, OutboxMessage.warning_id == wid)) == (notices, messages)
    assert len(await ledger(db, "warning.approved")) == 1 and len(await ledger(db, "warning.issued")) == 1


async def test_rejection_needs_a_reason_sends_nothing_and_cannot_be_approved_after(client, duty, db, signoff):
    wid = await submit(client, duty)
    leader = await login(client, "wl_leader")
    for body in ({}, {"reason": "  "}):
        r = await client.post(f"/api/v1/warnings/{wid}/reject", headers=leader, json=body)
        assert r.status_code == 422 and r.json()["detail"]["field"] == "reason"
    r = await client.post(f"/api/v1/warnings/{wid}/reject", headers=leader, json={"reason": "区域选错,应为横湖街道"})
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    r = await client.post(f"/api/v1/warnings/{wid}/approve", headers=await login(client, "wl_leader2"))
    assert r.status_code == 409 and "已被wl_leader退回" in r.json()["detail"]["message_zh"]
    assert await count(db, Notice, Notice.warning_id == wid) == 0
    assert await count(db, OutboxMessage, OutboxMessage.warning_id == wid) == 0
    [entry] = await ledger(db, "warning.rejected")
    assert {k: entry.details[k] for k in ("submitted_by", "rejected_by", "reason")} == {
        "submitted_by": "wl_duty", "rejected_by": "wl_leader", "reason": "区域选错,应为横湖街道"}
    detail = (await client.get(f"/api/v1/warnings/{wid}", headers=duty)).json()
    assert detail["signoff"]["reason"] == "区域选错,应为横湖街道" and detail["state"] == "rejected"


async def test_the_submitter_cannot_sign_off_their_own_warning(client, duty, db, signoff):
    wid = await submit(client, duty)
    # wl_duty is made a leader since submitting: still not their own approver.
    async with db.session() as s:
        await s.execute(update(User).where(User.username == "wl_duty").values(role="leader"))
    r = await client.post(f"/api/v1/warnings/{wid}/approve", headers=duty)
    assert r.status_code == 403 and "不能审核签发自己提交的预警" in r.json()["detail"]["message_zh"]
    assert await count(db, Notice, Notice.warning_id == wid) == 0


async def test_only_a_leader_in_scope_signs_off(client, duty, db, signoff):
    wid = await submit(client, duty, targets=("331081001", "331081002"))
    r = await client.post(f"/api/v1/warnings/{wid}/approve", headers=await login(client, "lh_leader"))
    assert r.status_code == 404  # another county's warning looks absent
    r = await client.post(f"/api/v1/warnings/{wid}/approve", headers=await login(client, "tp_leader"))
    assert r.status_code == 403 and "超出您的管辖范围" in r.json()["detail"]["message_zh"]
    for name in ("wl_admin", "wl_duty", "wl_audit"):
        r = await client.post(f"/api/v1/warnings/{wid}/approve", headers=await login(client, name))
        assert r.status_code == 403, name
    assert await count(db, Notice, Notice.warning_id == wid) == 0
    assert (await client.post(f"/api/v1/warnings/{wid}/approve",
                              headers=await login(client, "wl_leader"))).status_code == 200


async def test_a_held_warning_is_neither_expired_nor_approvable_after_its_expiry(client, duty, db, signoff, clock):
    expires = (clock.now() + timedelta(hours=1)).isoformat()
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001"], expires_at=expires))
    assert r.json()["state"] == "pending"
    wid = r.json()["id"]
    clock.advance(7200)
    async with db.session() as s:
        assert await expire_due(s, now=clock.now()) == []  # nothing was sent, nothing to end
    r = await client.post(f"/api/v1/warnings/{wid}/approve", headers=await login(client, "wl_leader"))
    assert r.status_code == 409 and r.json()["detail"]["field"] == "expires_at"
    assert await count(db, Notice, Notice.warning_id == wid) == 0
    r = await client.post(f"/api/v1/warnings/{wid}/reject", headers=await login(client, "wl_leader"),
                          json={"reason": "已过失效时间"})
    assert r.status_code == 200


async def test_no_leader_account_means_the_submission_is_refused_not_held_forever(client, duty, db, tree,
                                                                                  runtime, tmp_path):
    f = tmp_path / "policy.toml"
    f.write_text("[levels.red]\nsign_off = true\n", encoding="utf-8")
    runtime.policy = load_policy(f)
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001"]))
    assert r.status_code == 409 and r.json()["detail"]["field"] == "sign_off"
    assert await count(db, EarlyWarning) == 0


async def test_pending_warnings_hold_no_reply_code_and_are_listed_after_active_ones(client, duty, db, signoff):
    wid = await submit(client, duty)
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081002"], level="orange"))
    assert r.status_code == 201, r.text
    orange = r.json()["id"]
    listed = (await client.get("/api/v1/warnings", headers=duty, params={"state": "pending"})).json()
    assert [i["id"] for i in listed["items"]] == [wid]
    r = await client.post(f"/api/v1/warnings/{wid}/approve", headers=await login(client, "wl_leader"))
    async with db.session() as s:
        codes = {w.id: w.reply_code for w in (await s.execute(select(EarlyWarning))).scalars()}
    assert r.status_code == 200 and codes[wid] != codes[orange]


async def test_two_leaders_approving_at_once_send_it_once(client, duty, db, signoff):
    wid = await submit(client, duty)
    a, b = await login(client, "wl_leader"), await login(client, "wl_leader2")
    results = await asyncio.gather(*(client.post(f"/api/v1/warnings/{wid}/approve", headers=h) for h in (a, b)))
    assert sorted(r.status_code for r in results) == [200, 409]
    assert await count(db, Notice, Notice.warning_id == wid, Notice.reason == "primary") == 7
    assert len(await ledger(db, "warning.issued")) == 1
    async with db.session() as s:
        keys = (await s.execute(select(OutboxMessage.idempotency_key).where(OutboxMessage.warning_id == wid))
                ).scalars().all()
    assert len(keys) == len(set(keys))
