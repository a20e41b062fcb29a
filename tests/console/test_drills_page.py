"""The 演练 page in Chromium at 390 px: schedule a 突击 drill, see it listed, cancel it; a finished drill shows
its 叫应率 and links to its report and to the 演练 section of the 通报. No request leaves the site."""

from __future__ import annotations

from datetime import timedelta

from playwright.async_api import expect

from tests.console.conftest import browser_only, log_in
from warning_service.drills.jobs import drill_tick

pytestmark = browser_only


async def test_duty_officer_schedules_cancels_and_reads_drills_on_a_phone(chromium, db, tree, runtime, clock):
    base = chromium.base
    page = await chromium.page("phone")
    page.on("dialog", lambda d: d.accept())
    await log_in(page, base, "wl_duty", "/console/drills")
    await expect(page.locator("nav.menu a[href='/console/drills']")).to_have_attribute("aria-current", "page")
    # The clock reads 2026-07-01 16:00 Beijing: schedule for 18:00, unannounced.
    await page.fill("input[name=region_code]", "331081001")
    await page.select_option("select[name=hazard]", "mountain_torrent")
    await page.fill("input[name=due_at]", "2026-07-01T18:00")
    await page.check("input[name=surprise]")
    await page.click("#drill-form button[type=submit]")
    row = page.locator("#drills tbody tr[data-state=scheduled]")
    await expect(row).to_have_count(1)
    text = await row.inner_text()
    assert "太平街道" in text and "突击" in text and "2026-07-01 18:00" in text and "待执行" in text
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    await chromium.shot(page, "phone-drills-scheduled")
    await row.locator("button.cancel").click()
    await expect(page.locator("#drills tbody tr[data-state=cancelled]")).to_have_count(1)

    # A number check hides the level and asks for the answer window instead.
    await page.select_option("#drill-kind", "number_check")
    await expect(page.locator("select[name=level]")).to_be_hidden()
    await expect(page.locator("input[name=answer_minutes]")).to_be_visible()

    # An announced drill due now is issued by the worker; the page shows its 叫应率 and its links.
    await page.select_option("#drill-kind", "exercise")
    await page.fill("input[name=region_code]", "331081001")
    await page.fill("input[name=due_at]", "2026-07-01T16:30")
    await page.click("#drill-form button[type=submit]")
    await expect(page.locator("#drills tbody tr[data-state=scheduled]")).to_have_count(1)
    clock.advance(timedelta(minutes=30))
    assert await drill_tick(runtime) == 1
    await page.reload()
    issued = page.locator("#drills tbody tr[data-state=issued]")
    await expect(issued).to_have_count(1)
    assert "0.0%" in await issued.locator("td.rate").inner_text()
    assert await issued.locator("a", has_text="演练通报").count() == 0  # the 通报 is the auditors'
    await expect(issued.locator("a", has_text="叫应详情")).to_be_visible()
    auditor = await chromium.page("phone")
    await log_in(auditor, base, "wl_audit", "/console/drills")
    await expect(auditor.locator("#drill-form")).to_have_count(0)  # reads, never schedules
    page = auditor
    issued = page.locator("#drills tbody tr[data-state=issued]")
    report = issued.locator("a", has_text="演练通报")
    assert "period=day" in await report.get_attribute("href")
    await report.click()
    await page.wait_for_url("**/console/tongbao**")
    await expect(page.locator("section#exercise")).to_be_visible()
    await chromium.shot(page, "phone-drills-tongbao")
