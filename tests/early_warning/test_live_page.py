"""The duty officer's live page, in headless Debian Chromium: who has not answered, and a proxy answer."""

from __future__ import annotations

from playwright.async_api import expect
from sqlalchemy import select

from tests.early_warning.conftest import red_typhoon
from tests.report.test_page import ARTIFACTS, log_in, page, pytestmark, served  # noqa: F401  (fixtures)
from warning_service.acknowledgment.models import Acknowledgment


async def test_live_page_lists_the_unanswered_and_records_a_proxy_answer(page, served, client, duty, db):  # noqa: F811
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001001"]))
    wid = r.json()["id"]
    await log_in(page, served, "wl_duty", f"/console/warnings/{wid}")
    rows = page.locator("#missing tr")
    await rows.first.wait_for()
    assert await rows.count() == 3
    assert await page.locator("#k-reached").text_content() == "3"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "live-warning.png"), full_page=True)
    page.on("dialog", lambda d: d.accept("电话联系,已到岗"))
    await rows.first.locator("button").click()
    # A locator wait, not wait_for_function: the page's CSP (rightly) forbids the eval that one needs.
    await expect(rows).to_have_count(2)
    assert await page.locator("#k-acked").text_content() == "1"
    async with db.session() as s:
        acks = (await s.execute(select(Acknowledgment))).scalars().all()
    assert [(a.path, a.proxy_method, a.note) for a in acks] == [("proxy", "phone", "电话联系,已到岗")]


async def test_live_page_sends_a_stranger_to_the_login(page, served, client, duty):  # noqa: F811
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001001"]))
    await page.goto(f"{served}/console/warnings/{r.json()['id']}")
    assert "/console/login" in page.url
