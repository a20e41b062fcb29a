"""The auditors' page, in headless Debian Chromium against the app served by uvicorn."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from tests.console.conftest import REFRESH_README_IMAGES
from tests.factories import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]

# CI (WS_REQUIRE_SERVICES=1) fails without the browser instead of skipping.
_MISSING = not CHROMIUM.exists() and os.environ.get("WS_REQUIRE_SERVICES") != "1"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(_MISSING, reason="Debian chromium not installed (apt-get install chromium)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def served(app) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.025)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
async def page(served):
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = await browser.new_context(viewport={"width": 1200, "height": 900}, locale="zh-CN")
        page = await context.new_page()
        page.set_default_timeout(15_000)
        yield page
        await browser.close()


async def log_in(page, base: str, username: str, next_path: str) -> None:
    await page.goto(f"{base}{next_path}")
    assert "/console/login" in page.url  # no cookie yet: sent to the login form, then back
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}{next_path}")


async def test_warning_page_draws_the_curve_the_town_bars_and_the_missing_list(page, served, case, db):
    await log_in(page, served, "wl_audit", f"/console/reports/warnings/{case.warning_id}")
    curve = page.locator("svg#ack-curve")
    await curve.wait_for()
    points = await curve.locator("polyline.curve").get_attribute("points")
    assert points and len(points.split()) > 4
    assert await curve.locator("line.deadline").count() == 1
    assert "叫应期限 10 分钟" in await curve.locator("text.deadline-label").text_content()
    box = await curve.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 200  # actually laid out, not just in the DOM
    bars = page.locator("svg#town-rates rect.bar")
    assert await bars.count() == 2
    # Worst first: 城东街道 answered 1 of 4.
    assert await bars.first.get_attribute("data-code") == "331081002"
    widths = [float(await bars.nth(i).get_attribute("width")) for i in range(2)]
    assert widths[0] < widths[1]
    assert (await page.locator("#kpi-rate").inner_text()).strip() == "63.6%"
    rows = page.locator("#missing-table tbody tr")
    assert await rows.count() == 4
    assert "东辉村第2网格" in await rows.nth(3).inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    backend = "sqlite" if db.is_sqlite else "postgresql"
    await page.screenshot(path=str(ARTIFACTS / f"report-warning-{backend}.png"), full_page=True)


async def test_summary_page_links_to_the_warning_and_ranks_towns(page, served, case):
    await log_in(page, served, "wl_audit", "/console/reports?from=2026-06-01")
    bars = page.locator("svg#region-rates rect.bar")
    assert await bars.count() == 2
    await page.click(f"a[href='/console/reports/warnings/{case.warning_id}']")
    await page.locator("svg#ack-curve").wait_for()


async def test_a_duty_officer_is_shown_a_refusal_not_the_report(page, served, case):
    await log_in(page, served, "wl_duty", f"/console/reports/warnings/{case.warning_id}")
    assert "无权查看统计" in await page.locator("#error-zh").inner_text()
    assert await page.locator("svg#ack-curve").count() == 0


async def test_a_wrong_password_stays_on_the_login_form(page, served, case):
    await page.goto(f"{served}/console/login")
    await page.fill("input[name=username]", "wl_audit")
    await page.fill("input[name=password]", "not-the-password")
    await page.click("button[type=submit]")
    assert "用户名或密码错误" in await page.locator("#login-error").inner_text()
    cookies = await page.context.cookies()
    assert not any(c["name"] == "ws_token" for c in cookies)


async def test_drilling_into_a_town_shows_its_villages(page, served, case):
    await log_in(page, served, "wl_audit", f"/console/reports/warnings/{case.warning_id}")
    await page.click("#town-table a:text('城东街道')")
    await page.wait_for_url(f"{served}/console/reports/warnings/{case.warning_id}?region=331081002")
    assert (await page.locator("#kpi-rate").inner_text()).strip() == "25.0%"
    bars = page.locator("svg#town-rates rect.bar")
    assert await bars.count() == 1 and await bars.first.get_attribute("data-code") == "331081002001"
    assert "村(社区)" in await page.locator("#town-table thead").inner_text()
    assert await page.locator("#missing-table tbody tr").count() == 3


DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


async def test_region_search_by_name_narrows_the_report_and_shows_feedback(page, served, feedback_case, db):
    wid = feedback_case.case.warning_id
    await log_in(page, served, "wl_audit", f"/console/reports/warnings/{wid}")
    # The feedback section and the lift reason are on the page.
    assert (await page.locator("#fb-evacuated").inner_text()).strip() == "455"
    assert feedback_case.lift_reason in await page.locator("#history").inner_text()
    first_town = page.locator("#feedback-table tbody tr").first
    assert "城东街道" in await first_town.inner_text()  # most evacuated first
    assert "上门确认" in await page.locator("#proxy-table").inner_text()
    if not db.is_sqlite and REFRESH_README_IMAGES:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(DOCS_IMG / "report-feedback.png"), full_page=True)
    # Typing part of a name offers the matching regions of the auditor's scope, with their path.
    await page.fill("#region-input", "城东")
    options = page.locator("#region-options option")
    await options.first.wait_for(state="attached")
    assert await options.first.get_attribute("value") == "331081002"
    assert "温岭市/城东街道" in (await options.first.get_attribute("label") or "")
    # A name is enough: 城东街道 narrows the report to that town.
    await page.fill("#region-input", "城东街道")
    await page.click("#region-form button[type=submit]")
    await page.wait_for_url("**/console/reports/warnings/*?region=*")
    assert (await page.locator("#kpi-rate").inner_text()).strip() == "25.0%"
    assert (await page.locator("#fb-evacuated").inner_text()).strip() == "300"
    assert await page.locator("#region-input").input_value() == "城东街道"
    # A region of another county is not found inside this auditor's scope.
    await page.fill("#region-input", "古城街道")
    await page.click("#region-form button[type=submit]")
    assert "您的管辖范围 温岭市 内没有区划 古城街道" in await page.locator("#error-zh").inner_text()
