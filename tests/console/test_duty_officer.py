"""A duty officer's whole job in the browser, at 1366 px and at 390 px: issue, watch, proxy-answer, update, lift."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect
from sqlalchemy import func, select

from tests.console.conftest import browser_only, keep_for_readme, log_in
from warning_service.acknowledgment.models import Acknowledgment
from warning_service.delivery.dispatcher import dispatch_once
from warning_service.early_warning.models import EarlyWarning
from warning_service.ledger.models import LedgerEntry, LedgerPending
from warning_service.notice.models import Notice

pytestmark = browser_only
LINK = re.compile(r"(/a/)[A-Za-z0-9_-]+")


async def ledger_details(db, action: str) -> list[dict]:
    async with db.session() as s:
        rows = list((await s.execute(select(LedgerPending.details).where(LedgerPending.action == action))).scalars())
        rows += list((await s.execute(select(LedgerEntry.details).where(LedgerEntry.action == action))).scalars())
    return rows


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
async def test_duty_officer_issues_watches_answers_updates_and_lifts(chromium, viewport, db, tree, runtime,
                                                                   console, clock):
    base = chromium.base
    page = await chromium.page(viewport)
    await log_in(page, base, "wl_duty", "/console/issue")
    await chromium.shot(page, f"{viewport}-issue-empty")

    # Region picker: search by Chinese name, and expand the tree down to a village of another town.
    await page.select_option("#hazard", "rainstorm")
    await page.select_option("#level", "orange")
    assert "village_responsible" not in await page.locator("#policy-body").inner_text()  # Chinese names shown
    assert "村级防汛责任人" in await page.locator("#policy-body").inner_text()
    # 防御指南 pre-filled for rainstorm × orange, from the same template the issue would use.
    assert "防汛责任人立即到岗到位" in await page.locator("#instruction").input_value()
    await page.fill("#region-search", "太平")
    await page.locator("#search-results button[data-code='331081001']").click()
    await page.locator("#tree li[data-code='331081'] > button.toggle").click()
    await page.locator("#tree li[data-code='331081002'] > button.toggle").click()
    await page.locator("#r-331081002001").check()
    assert await page.locator("#chosen .chip").count() == 2
    # The other county is never offered.
    await page.fill("#region-search", "临海")
    await page.wait_for_selector("#search-results li.muted")

    # A missing description is refused in Chinese, naming the field.
    await page.click("#preview-button")
    assert "预警内容" in await page.locator("#err-description").inner_text()
    await page.fill("#description", "预计今天夜里到明天白天,我市将出现暴雨,局部大暴雨,小时雨强可达50毫米。")
    async with page.expect_response("**/api/v1/warnings/preview") as resp_info:
        await page.click("#preview-button")
    preview = await (await resp_info.value).json()
    await page.wait_for_selector("#preview:not([hidden])")
    shown = int(await page.locator("#preview-count").inner_text())
    # Orange reaches village and grid persons: 太平街道's 2 villages and 4 grids; 东辉村 and its 2 grids.
    assert shown == preview["recipient_count"] == 9
    assert "条计费短信" in await page.locator("#sms-meta").inner_text()
    shot = await chromium.shot(page, f"{viewport}-issue-preview")
    if viewport == "desktop":
        keep_for_readme(shot, "console-issue-preview.png")

    # Confirm; a double click issues once.
    await page.click("#confirm-button")
    assert "9 人" in await page.locator("#confirm-text").inner_text()
    await page.locator("#confirm-yes").dblclick()
    await page.wait_for_url(re.compile(r".*/console/warnings/\d+.*"))
    wid = int(re.search(r"/console/warnings/(\d+)", page.url).group(1))
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(EarlyWarning))).scalar_one() == 1
        issued = (await s.execute(select(func.count()).select_from(Notice).where(
            Notice.warning_id == wid, Notice.reason == "primary"))).scalar_one()
    assert issued == preview["recipient_count"]

    # The SMS the sample person receives is the SMS the preview showed.
    await dispatch_once(runtime, batch_size=100)
    sample = preview["sample_recipient"]
    async with db.session() as s:
        nid = (await s.execute(select(Notice.id).where(
            Notice.warning_id == wid, Notice.person_id == tree.person(sample["region_code"], sample["role"])))
        ).scalar_one()
    sms = next(t for t in preview["texts"] if t["channel"] == "sms")
    sent = [m for m in console.sent if m.channel == "sms" and m.metadata["notice_id"] == str(nid)]
    assert [LINK.sub(r"\1x", m.body) for m in sent] == [LINK.sub(r"\1x", sms["body"])]

    # The board: phones as people read them, tap to call, all visible on a phone.
    rows = page.locator("#missing tr")
    await expect(rows).to_have_count(9)  # (a string predicate would need eval, which the CSP forbids)
    tel = page.locator("#missing a.tel").first
    assert re.fullmatch(r"1\d\d \d{4} \d{4}", await tel.inner_text())
    assert (await tel.get_attribute("href")).startswith("tel:")
    button = rows.first.locator("button.proxy")
    box = await button.bounding_box()
    width = await page.evaluate("window.innerWidth")
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width  # 代确认 is on screen
    assert await page.evaluate("document.documentElement.scrollWidth") <= width + 1
    shot = await chromium.shot(page, f"{viewport}-board-live")
    if viewport == "desktop":
        keep_for_readme(shot, "console-board.png")

    # Proxy answer: a method and a required note.
    await button.click()
    await page.locator("#proxy-form input[value=visit]").check()
    await page.click("#proxy-save")
    assert "说明" in await page.locator("#err-note").inner_text()
    await page.fill("#proxy-note", "上门找到本人,已到岗")
    await page.click("#proxy-save")
    await expect(rows).to_have_count(8)
    await expect(page.locator("#k-acked")).to_have_text("1")
    async with db.session() as s:
        acks = (await s.execute(select(Acknowledgment))).scalars().all()
    assert [(a.path, a.proxy_method, a.note) for a in acks] == [("proxy", "visit", "上门找到本人,已到岗")]

    # Upgrade with a reason.
    await page.click("#board-actions button[data-mode=upgrade]")
    await page.select_option("#u-level", "red")
    await page.fill("#u-reason", "雨势加强,升级为红色")
    await page.click("#update-save")
    await page.wait_for_selector("section.banner:has-text('红色预警')")
    async with db.session() as s:
        assert (await s.get(EarlyWarning, wid)).level == "red"
    assert [d["reason"] for d in await ledger_details(db, "warning.updated")] == ["雨势加强,升级为红色"]

    # Lift with a reason: the board then shows the final figures, not zeros.
    await page.click("#board-actions button.danger")
    await page.click("#lift-save")
    assert "解除原因" in await page.locator("#err-lift").inner_text()
    await page.fill("#lift-reason", "降雨明显减弱,险情解除")
    await page.click("#lift-save")
    await page.wait_for_selector("#state[data-state=lifted]")
    assert int(await page.locator("#k-reached").inner_text()) >= 4
    await expect(page.locator("#k-acked")).to_have_text("0")  # the upgrade asked everyone again
    assert [d["reason"] for d in await ledger_details(db, "warning.lifted")] == ["降雨明显减弱,险情解除"]
    await chromium.shot(page, f"{viewport}-board-lifted")

    # The list: the warning with its figures, times in Beijing time although the browser is in New York.
    await page.goto(f"{base}/console/warnings")
    row = page.locator(f"#warning-list tr[data-id='{wid}']")
    issued_bj = clock.now().astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    assert issued_bj in await row.inner_text()
    await chromium.shot(page, f"{viewport}-warning-list")
    for path, name in (("/console/people", "people"), ("/docs", "docs"), ("/redoc", "redoc")):
        await page.goto(f"{base}{path}")
        await page.wait_for_load_state("networkidle")
        await chromium.shot(page, f"{viewport}-{name}")
    assert await page.locator("redoc, [class*=redoc], .api-content").count() >= 1
