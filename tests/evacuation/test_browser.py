"""The keeper's task page and the shelter manager's page in headless Chromium (Debian's) at 390 px, served on a
real port with every request to another host refused and counted (the console's harness)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.console.conftest import browser_only
from tests.evacuation.conftest import TOWN, issue, tasks_by_household, token_for
from warning_service.evacuation import shelters
from warning_service.evacuation.models import ShelterLink
from warning_service.ledger.models import LedgerPending
from warning_service.notice.models import Notice
from warning_service.notice.tokens import link_key

pytestmark = browser_only


async def test_keeper_page_at_390px_lists_their_households_each_with_its_own_decision(
    chromium,
    runtime,
    db,
    town,
    database,
):
    wid = await issue(runtime, targets=[TOWN])
    tasks = await tasks_by_household(db, wid)
    assert tasks["H1"].notice_id == tasks["H2"].notice_id  # 王大伯 and 李阿婆: one keeper, one notice
    backend = database.engine.dialect.name
    page = await chromium.page("phone")
    await page.goto(f"{chromium.base}/e/{token_for(runtime.settings, tasks['H1'].notice_id)}")
    assert "2户4人" in await page.locator("h1").inner_text()
    assert await page.locator("section.household").count() == 2
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    ack = await page.locator("#ack-button").bounding_box()
    assert ack and ack["height"] >= 60 and ack["width"] >= 300
    await chromium.shot(page, f"evacuation-keeper-{backend}")

    wang, li = page.locator(f"#h{tasks['H1'].id}"), page.locator(f"#h{tasks['H2'].id}")
    await wang.locator("input[name=status][value=moved]").check()
    await wang.locator("select[name=shelter_id]").select_option(str(town.shelter_id))
    await wang.locator("input[name=people_moved]").fill("3")
    save = await wang.locator("button.save").bounding_box()
    assert save and save["height"] >= 48
    await wang.locator("button.save").tap()
    await page.wait_for_selector(f"#h{tasks['H1'].id}[data-state=moved]")
    assert "太平街道中心小学避灾安置点" in await page.locator(f"#h{tasks['H1'].id}").inner_text()
    assert await page.locator("#ack-button").count() == 0  # the decision answered the keeper's notice too
    assert await page.locator(f"#h{tasks['H2'].id}").get_attribute("data-state") == "pending"  # still to do

    await li.locator("input[name=status][value=refused]").check()
    await li.locator("button.save").tap()
    await page.wait_for_selector(f"#h{tasks['H2'].id} [role=alert]")
    assert "拒绝转移须填写情况说明" in await page.locator(f"#h{tasks['H2'].id}").inner_text()
    await page.locator(f"#h{tasks['H2'].id} textarea").fill("老人不愿离家,已报村委会")
    await page.locator(f"#h{tasks['H2'].id} button.save").tap()
    await page.wait_for_selector(f"#h{tasks['H2'].id}[data-state=refused]")
    await chromium.shot(page, f"evacuation-keeper-done-{backend}")
    saved = await tasks_by_household(db, wid)
    assert (saved["H1"].status, saved["H1"].people_moved, saved["H1"].shelter_id) == ("moved", 3, town.shelter_id)
    assert saved["H2"].status == "refused" and saved["H3"].status == "pending"
    async with db.session() as s:
        assert (await s.get(Notice, tasks["H1"].notice_id)).state == "acknowledged"  # type: ignore[union-attr]


async def test_shelter_manager_page_at_390px_records_arrivals_and_departures(
    chromium,
    runtime,
    db,
    town,
    database,
):
    wid = await issue(runtime, targets=[TOWN])
    tasks = await tasks_by_household(db, wid)
    async with db.session() as s:
        link = (await s.execute(select(ShelterLink).where(ShelterLink.warning_id == wid))).scalar_one()
    assert link.shelter_id == town.shelter_id and link.manager_id == town.people["manager"]
    token = shelters.token_for(link.id, link_key=link_key(runtime.settings.secret_key.get_secret_value()))
    backend = database.engine.dialect.name
    page = await chromium.page("phone")
    await page.goto(f"{chromium.base}/s/{token}")
    assert await page.locator("section.household").count() == 3  # 王大伯, 李阿婆, 陈家: all in the town
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    chen = page.locator(f"#t{tasks['H3'].id}")
    await chen.locator("form.arrival input[name=people]").fill("4")
    await chen.locator("form.arrival button").tap()
    await page.wait_for_selector("#flash")
    assert await page.locator("#present").inner_text() == "4"
    assert await page.locator(f"#t{tasks['H3'].id}").get_attribute("data-present") == "4"
    await page.locator(f"#t{tasks['H3'].id} form.departure input[name=people]").fill("1")
    await page.locator(f"#t{tasks['H3'].id} form.departure button").tap()
    await page.wait_for_selector("#flash")
    assert await page.locator("#present").inner_text() == "3"
    await chromium.shot(page, f"evacuation-shelter-{backend}")
    saved = (await tasks_by_household(db, wid))["H3"]
    # The manager saw them arrive: the household is 已转移 to this shelter, whatever its keeper reported.
    assert (saved.status, saved.shelter_id, saved.arrived_people, saved.departed_people) == (
        "moved",
        town.shelter_id,
        4,
        1,
    )
    async with db.session() as s:
        actions = [
            e.action
            for e in (
                await s.execute(select(LedgerPending).where(LedgerPending.subject_type == "evacuation_task"))
            ).scalars()
        ]
    assert actions.count("evacuation.arrival") == 1 and actions.count("evacuation.departure") == 1


@pytest.mark.parametrize("path", ["/s/AAAAAAAAAAAAAAAAAAAAAAAAAA", "notice-token"])
async def test_a_forged_or_borrowed_shelter_token_finds_nothing(client, runtime, db, town, path):
    wid = await issue(runtime, targets=[TOWN])
    if path == "notice-token":
        # A keeper's notice token is no shelter page (each page kind has its own key).
        path = f"/s/{token_for(runtime.settings, (await tasks_by_household(db, wid))['H1'].notice_id)}"
    assert (await client.get(path)).status_code == 404
