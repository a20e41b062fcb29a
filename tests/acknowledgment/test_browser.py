"""The link page in headless Chromium (Debian's), on a phone-sized screen: tap 确认收到, give feedback."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
import uvicorn

from tests.acknowledgment.conftest import acks, issue, notice_of, reload, token_for
from warning_service.acknowledgment.feedback import get_feedback
from warning_service.notice.models import Notice

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
# CI (WS_REQUIRE_SERVICES=1) fails without the browser instead of skipping.
HAVE_CHROMIUM = CHROMIUM.exists() or os.environ.get("WS_REQUIRE_SERVICES") == "1"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
GRID = "33108100100101"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def served(app):
    """The app on a real port, in this event loop, so the browser talks HTTP to it."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(20):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def test_page_in_chromium_acknowledges_and_takes_feedback(served, settings, runtime, db, tree,
                                                                database):
    if not HAVE_CHROMIUM:
        pytest.skip("Debian chromium not installed (apt-get install -y chromium)")
    from playwright.async_api import async_playwright

    wid = await issue(runtime, targets=[GRID])
    n = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    url = f"{served}/a/{token_for(settings, n.id)}"
    ARTIFACTS.mkdir(exist_ok=True)
    backend = database.engine.dialect.name
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            ctx = await browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                            is_mobile=True, has_touch=True, locale="zh-CN")
            page = await ctx.new_page()
            await page.goto(url)
            assert "台风红色预警" in await page.locator("h1").inner_text()
            banner = await page.locator("header.banner").evaluate("e => getComputedStyle(e).backgroundColor")
            assert banner == "rgb(198, 40, 40)"  # red, #c62828
            button = page.locator("#ack-button")
            box = await button.bounding_box()
            assert box and box["height"] >= 60 and box["width"] >= 300  # one thumb, half awake
            await page.screenshot(path=str(ARTIFACTS / f"ack-page-{backend}.png"), full_page=True)

            await button.tap()
            await page.wait_for_selector("#status[data-state=acknowledged]")
            assert "已确认收到" in await page.locator("#status").inner_text()
            await page.screenshot(path=str(ARTIFACTS / f"ack-done-{backend}.png"), full_page=True)

            await page.locator("input[name=at_post][value=yes]").check()
            await page.fill("#villages_affected", "2")
            await page.fill("#people_evacuated", "36")
            await page.fill("#note", "已转移至村文化礼堂")
            await page.click("#feedback-button")
            await page.wait_for_selector(".flash")
            assert "反馈已保存" in await page.locator(".flash").inner_text()
            assert await page.input_value("#people_evacuated") == "36"
            await page.screenshot(path=str(ARTIFACTS / f"ack-feedback-{backend}.png"), full_page=True)
        finally:
            await browser.close()

    fresh = await reload(db, Notice, n.id)
    assert fresh.state == "acknowledged"
    rows = await acks(db, n.id)
    assert [(a.path, a.source) for a in rows] == [("link", "127.0.0.1")]
    async with db.session() as s:
        fb = await get_feedback(s, n.id)
    assert fb is not None and (fb.at_post, fb.villages_affected, fb.people_evacuated, fb.note) == (
        True, 2, 36, "已转移至村文化礼堂")
