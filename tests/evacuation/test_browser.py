"""The task page in headless Chromium (Debian's) at 390 px: read the household, record 已转移 with a shelter."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
import uvicorn

from tests.evacuation.conftest import TOWN, issue, tasks_by_household, token_for

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists() or os.environ.get("WS_REQUIRE_SERVICES") == "1"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def served(app):
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def test_task_page_at_390px_records_a_move_to_a_shelter(served, runtime, db, town, database):
    if not HAVE_CHROMIUM:
        pytest.skip("Debian chromium not installed (apt-get install -y chromium)")
    from playwright.async_api import async_playwright

    wid = await issue(runtime, targets=[TOWN])
    task = (await tasks_by_household(db, wid))["H3"]
    url = f"{served}/e/{token_for(runtime.settings, task.notice_id)}"
    ARTIFACTS.mkdir(exist_ok=True)
    backend = database.engine.dialect.name
    requests: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            ctx = await browser.new_context(
                viewport={"width": 390, "height": 844},
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
                locale="zh-CN",
            )
            page = await ctx.new_page()
            page.on("request", lambda r: requests.append(r.url))
            await page.goto(url)
            assert "陈家" in await page.locator("h1").inner_text()
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
            save = await page.locator("#save-button").bounding_box()
            ack = await page.locator("#ack-button").bounding_box()
            assert save and ack and ack["height"] >= 60 and ack["width"] >= 300 and save["height"] >= 48
            await page.screenshot(path=str(ARTIFACTS / f"evacuation-task-{backend}.png"), full_page=True)

            await page.locator("input[name=status][value=moved]").check()
            await page.select_option("#shelter", str(town.shelter_id))
            await page.fill("#people", "4")
            await page.locator("#save-button").tap()
            await page.wait_for_selector("#status[data-state=moved]")
            status = await page.locator("#status").inner_text()
            assert "已转移 4 人" in status and "太平街道中心小学避灾安置点" in status
            assert await page.locator("#ack-button").count() == 0  # the decision answered the notice too

            await page.locator("input[name=status][value=refused]").check()
            await page.fill("#note", "")
            await page.locator("#save-button").tap()
            await page.wait_for_selector("#error")
            assert "拒绝转移须填写情况说明" in await page.locator("#error").inner_text()
            await page.screenshot(path=str(ARTIFACTS / f"evacuation-task-done-{backend}.png"), full_page=True)
        finally:
            await browser.close()
    assert all(u.startswith(served) for u in requests)  # nothing from another host
    saved = (await tasks_by_household(db, wid))["H3"]
    assert (saved.status, saved.people_moved, saved.shelter_id) == ("moved", 4, town.shelter_id)
