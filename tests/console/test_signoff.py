"""审核签发 in the console: the duty officer submits, the leader's 待审核 queue shows what approval would send,
批准签发 makes the board live, 退回 sends nothing — over HTTP and in Chromium at 1366 and 390 px."""

from __future__ import annotations

import json
import re

import pytest
from playwright.async_api import expect
from sqlalchemy import func, select

from tests.console.conftest import browser_only, log_in
from tests.console.test_pages import cookie_login
from tests.early_warning.conftest import red_typhoon
from tests.factories import PASSWORD, login
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.models import EarlyWarning
from warning_service.early_warning.policy import load_policy
from warning_service.notice.models import Notice


@pytest.fixture
def red_needs_signoff(runtime, tmp_path):
    f = tmp_path / "policy.toml"
    f.write_text("[levels.red]\nsign_off = true\n", encoding="utf-8")
    runtime.policy = load_policy(f)


async def count(db, model, *where) -> int:
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def test_the_leader_lands_on_the_queue_and_only_leaders_have_it(client, tree):
    r = await client.post("/console/login", data={"username": "wl_leader", "password": PASSWORD})
    assert r.headers["location"] == "/console/approvals"
    client.cookies.clear()
    for username, has_queue in (("wl_leader", True), ("wl_duty", False), ("wl_admin", False), ("wl_audit", False)):
        await cookie_login(client, username)
        html = (await client.get("/console/warnings")).text
        assert ('href="/console/approvals"' in html) is has_queue, username
        page = await client.get("/console/approvals")
        assert page.status_code == (200 if has_queue else 403), username
        client.cookies.clear()


async def test_the_queue_shows_what_approval_would_send(client, tree, db, red_needs_signoff):
    duty = await login(client, "wl_duty")
    preview = (await client.post("/api/v1/warnings/preview", headers=duty, json=red_typhoon(["331081001"]))).json()
    wid = (await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001"]))).json()["id"]
    other = (await client.post("/api/v1/warnings", headers=await login(client, "lh_duty"),
                               json=red_typhoon(["331082"]))).json()["id"]
    await cookie_login(client, "wl_leader")
    html = (await client.get("/console/approvals")).text
    assert f'data-id="{wid}"' in html and f'data-id="{other}"' not in html  # 临海's stays with 临海's leader
    assert f'data-count="{preview["recipient_count"]}"' in html and "wl_duty" in html
    sms = next(t for t in preview["texts"] if t["channel"] == "sms")
    assert sms["body"].split("/a/")[0] in html  # the SMS as it would be sent
    # The page rendered the texts inside a rolled-back savepoint: nothing of it stayed.
    assert await count(db, Notice) == 0 and await count(db, OutboxMessage) == 0
    async with db.session() as s:
        assert (await s.get(EarlyWarning, wid)).state == "pending"
    # The list and the board say it waits, with no deadline running.
    client.cookies.clear()
    await cookie_login(client, "wl_duty")
    listed = (await client.get("/console/warnings?state=pending")).text
    assert f'data-id="{wid}"' in listed and "待审核签发" in listed
    board = (await client.get(f"/console/warnings/{wid}")).text
    assert "待带班领导审核签发" in board and "尚未发送任何消息" in board and 'id="board-actions"' not in board


async def test_the_issue_form_knows_which_levels_need_sign_off(client, tree, red_needs_signoff):
    await cookie_login(client, "wl_duty")
    html = (await client.get("/console/issue")).text
    policies = json.loads(re.search(r'<script type="application/json" id="policies">(.*?)</script>', html).group(1))
    assert policies["typhoon.red"]["sign_off"] is True and policies["typhoon.orange"]["sign_off"] is False


async def test_the_list_filters_by_region_name(client, tree):
    duty = await login(client, "wl_duty")
    a = (await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001"]))).json()["id"]
    b = (await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081002"]))).json()["id"]
    await cookie_login(client, "wl_duty")
    html = (await client.get("/console/warnings", params={"region_q": "太平街道"})).text
    assert f'data-id="{a}"' in html and f'data-id="{b}"' not in html and "温岭市/太平街道" in html
    bad = await client.get("/console/warnings", params={"region_q": "临海"})  # another county: not found
    assert bad.status_code == 422 and "没有名称含“临海”的区域" in bad.text
    several = await client.get("/console/warnings", params={"region_q": "街道"})
    assert several.status_code == 422 and "请从下拉列表中选择" in several.text


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
@browser_only[1]
@browser_only[0]
async def test_duty_submits_the_leader_approves_and_the_board_goes_live(chromium, viewport, db, tree,
                                                                       red_needs_signoff):
    base = chromium.base
    duty = await chromium.page(viewport)
    await log_in(duty, base, "wl_duty", "/console/issue")
    await duty.select_option("#hazard", "typhoon")
    await duty.select_option("#level", "red")
    assert "须经带班领导审核签发" in await duty.locator("#policy-body").inner_text()
    await duty.fill("#region-search", "太平")
    await duty.locator("#search-results button[data-code='331081001']").click()
    await duty.fill("#description", "台风“烟花”预计今夜登陆,最大风力14级。")
    async with duty.expect_response("**/api/v1/warnings/preview") as resp_info:
        await duty.click("#preview-button")
    preview = await (await resp_info.value).json()
    await duty.wait_for_selector("#preview:not([hidden])")
    await expect(duty.locator("#confirm-button")).to_have_text("提交审核…")
    await chromium.shot(duty, f"{viewport}-issue-signoff")
    await duty.click("#confirm-button")
    await expect(duty.locator("#confirm-heading")).to_have_text("提交带班领导审核?")
    await duty.locator("#confirm-yes").dblclick()
    await duty.wait_for_url(re.compile(r".*/console/warnings/\d+$"))
    wid = int(re.search(r"/console/warnings/(\d+)", duty.url).group(1))
    await expect(duty.locator("#held")).to_contain_text("尚未发送任何消息")
    await chromium.shot(duty, f"{viewport}-board-pending")
    assert await count(db, EarlyWarning) == 1
    assert await count(db, Notice) == 0 and await count(db, OutboxMessage) == 0

    leader = await chromium.page(viewport)
    await log_in(leader, base, "wl_leader", "/console/", lands="/console/approvals")
    item = leader.locator(f"section.approval[data-id='{wid}']")
    await expect(item.locator(".preview-count")).to_have_text(str(preview["recipient_count"]))
    width = await leader.evaluate("window.innerWidth")
    assert await leader.evaluate("document.documentElement.scrollWidth") <= width + 1
    await chromium.shot(leader, f"{viewport}-approvals")
    await item.locator("button.approve").click()
    assert f"共 {preview['recipient_count']} 人" in await leader.locator("#approve-text").inner_text()
    await leader.locator("#approve-yes").dblclick()
    await leader.wait_for_url(re.compile(rf".*/console/warnings/{wid}\?issued=\d+"))
    assert await count(db, Notice, Notice.warning_id == wid, Notice.reason == "primary") == \
        preview["recipient_count"]
    # The duty officer's board notices the approval by itself and goes live.
    await duty.wait_for_selector("#state[data-state=active]")
    await expect(duty.locator("#k-reached")).to_have_text(str(preview["recipient_count"]))
    await expect(duty.locator("#signoff-note")).to_contain_text("签发:wl_leader")
    await chromium.shot(duty, f"{viewport}-board-approved")

    # A second submission, sent back with a reason: nothing is sent, the submitter sees why.
    r = await duty.request.post(f"{base}/api/v1/warnings", data=red_typhoon(["331081002"]),
                                headers={"Origin": base})
    second = (await r.json())["id"]
    await leader.goto(f"{base}/console/approvals")
    await leader.locator(f"section.approval[data-id='{second}'] button.reject").click()
    await leader.click("#reject-yes")
    assert "退回原因" in await leader.locator("#reject-error").inner_text()
    await leader.fill("#reject-reason", "区域有误,应为横湖街道")
    await leader.click("#reject-yes")
    await expect(leader.locator(f"section.approval[data-id='{second}']")).to_have_count(0)
    assert await count(db, Notice, Notice.warning_id == second) == 0
    await duty.goto(f"{base}/console/warnings/{second}")
    await expect(duty.locator("#reject-reason")).to_have_text("区域有误,应为横湖街道")
