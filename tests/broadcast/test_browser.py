"""The terminal page and the board's loudspeaker section in headless Chromium at 390 px, nothing from another host."""

from __future__ import annotations

from tests.broadcast.conftest import VILLAGE
from tests.console.conftest import browser_only, chromium, log_in, served  # noqa: F401 — fixtures
from tests.delivery.conftest import issue
from warning_service.delivery.dispatcher import dispatch_tick

pytestmark = browser_only


async def test_the_terminal_page_lists_villages_with_their_offline_loudspeakers_at_390px(
        chromium, terminals) -> None:  # noqa: F811
    page = await chromium.page("phone")
    await log_in(page, chromium.base, "wl_duty", "/console/broadcast")
    assert await page.locator("h2").first.inner_text() == "太平街道"
    assert await page.locator("h3").first.inner_text() == "横湖村 3 台,1 台离线"
    assert await page.locator("#t-offline").inner_text() == "1"
    row = page.locator("tr[data-code=HH-03]")
    assert "离线" in await row.inner_text()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide"
    await chromium.shot(page, "broadcast-terminals-390")


async def test_the_upload_lists_every_bad_row_in_the_browser(chromium, terminals, tmp_path) -> None:  # noqa: F811
    page = await chromium.page("phone")
    await log_in(page, chromium.base, "wl_duty", "/console/broadcast")
    bad = tmp_path / "终端.csv"
    bad.write_text("终端编号,终端名称,区划代码,平台终端编号\nA-1,,331081001001,P-1\nA-2,镇上,331081001,P-2\n")
    await page.set_input_files("#upload-file", str(bad))
    await page.click("#upload-form button")
    await page.locator("#upload-errors:not([hidden])").wait_for()
    assert "共 2 处错误" in await page.locator("#upload-result").inner_text()
    cells = await page.locator("#upload-errors tbody tr").all_inner_texts()
    assert ["终端名称" in cells[0], "区划代码" in cells[1]] == [True, True]


async def test_the_board_names_the_village_whose_loudspeaker_did_not_play(
        chromium, client, duty, runtime, terminals, simulator, platform) -> None:  # noqa: F811
    sim, _ = simulator
    wid = await issue(client, duty, targets=[VILLAGE], level="red")
    await dispatch_tick(runtime)
    await sim.push_receipts()
    page = await chromium.page("phone")
    await log_in(page, chromium.base, "wl_duty", f"/console/warnings/{wid}")
    item = page.locator(f"#bp-list li[data-village='{VILLAGE}']")
    await item.wait_for()
    text = await item.inner_text()
    assert "太平街道 横湖村" in text and "已播 2/3 台" in text and "横湖村溪边(播放失败,终端离线)" in text
    assert await page.locator("#bp-missing").inner_text() == "1"
    await chromium.shot(page, "broadcast-board-390")

