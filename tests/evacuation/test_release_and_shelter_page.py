"""解除转移 per area against a keeper's one notice; the shelter manager's page: its rules and its expiry."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from tests.evacuation.conftest import HENGHU, TOWN, XIMEN, issue, lift, tasks_by_household, token_for
from warning_service.evacuation import shelters
from warning_service.evacuation.models import Household, ShelterLink
from warning_service.notice.models import Notice
from warning_service.notice.tokens import link_key


async def notice_state(db, nid: int) -> str:
    async with db.session() as s:
        return (await s.get(Notice, nid)).state  # type: ignore[union-attr]


async def test_a_keepers_notice_ends_only_when_every_household_on_it_is_released(runtime, db, town, client, duty):
    # 西门村's keeper also keeps 王大伯 in 横湖村: one notice, two areas.
    async with db.session() as s:
        await s.execute(update(Household).where(Household.code == "H1").values(keeper_id=town.people["ximen"]))
    wid = await issue(runtime, targets=[TOWN])
    tasks = await tasks_by_household(db, wid)
    nid = tasks["H1"].notice_id
    assert tasks["H3"].notice_id == nid and tasks["H2"].notice_id != nid
    await lift(runtime, wid)
    r = await client.post(f"/api/v1/evacuation/warnings/{wid}/release", headers=duty, json={"region_code": XIMEN})
    assert r.status_code == 200 and r.json()["tasks"] == 1
    after = await tasks_by_household(db, wid)
    assert after["H3"].released_at is not None and after["H1"].released_at is None
    # 王大伯 is still out: the keeper's page and its households stay (the notice was closed by the lift).
    page = f"/e/{token_for(runtime.settings, nid)}"
    assert (await client.get(page)).status_code == 200
    r = await client.post(f"/api/v1/evacuation/warnings/{wid}/release", headers=duty, json={"region_code": HENGHU})
    assert r.status_code == 200 and r.json()["tasks"] == 2
    assert all(t.released_at is not None for t in (await tasks_by_household(db, wid)).values())


async def test_release_closes_the_keepers_notice_once_all_their_households_are_released(
    runtime, db, town, client, duty
):
    async with db.session() as s:
        await s.execute(update(Household).where(Household.code == "H1").values(keeper_id=town.people["ximen"]))
    wid = await issue(runtime, targets=[TOWN])
    nid = (await tasks_by_household(db, wid))["H1"].notice_id
    r = await client.post(f"/api/v1/evacuation/warnings/{wid}/release", headers=duty, json={"region_code": XIMEN})
    assert r.status_code == 200 and r.json()["notices_closed"] == 0
    assert await notice_state(db, nid) == "pending"  # 王大伯 is still to be moved: the 叫应 goes on
    r = await client.post(f"/api/v1/evacuation/warnings/{wid}/release", headers=duty, json={"region_code": HENGHU})
    assert r.status_code == 200 and r.json()["notices_closed"] == 2
    assert await notice_state(db, nid) == "closed"


async def shelter_token(runtime, db, wid: int) -> tuple[ShelterLink, str]:
    async with db.session() as s:
        link = (await s.execute(select(ShelterLink).where(ShelterLink.warning_id == wid))).scalar_one()
    return link, shelters.token_for(link.id, link_key=link_key(runtime.settings.secret_key.get_secret_value()))


async def test_the_shelter_page_refuses_more_people_than_the_household_and_strangers(runtime, db, town, client):
    wid = await issue(runtime, targets=[TOWN])
    tasks = await tasks_by_household(db, wid)
    _, token = await shelter_token(runtime, db, wid)
    page = f"/s/{token}"
    r = await client.get(page)
    assert r.status_code == 200 and "王大伯" in r.text and "容量 6" in r.text
    r = await client.post(f"{page}/arrival", data={"task_id": str(tasks["H1"].id), "people": "4"})
    assert r.status_code == 422 and "该户共 3 人" in r.text
    r = await client.post(f"{page}/departure", data={"task_id": str(tasks["H1"].id), "people": "1"})
    assert r.status_code == 422 and "在点仅 0 人" in r.text
    r = await client.post(f"{page}/arrival", data={"task_id": "999999", "people": "1"})
    assert r.status_code == 404
    r = await client.post(f"{page}/arrival", data={"task_id": str(tasks["H1"].id), "people": "3"})
    assert r.status_code == 303
    saved = (await tasks_by_household(db, wid))["H1"]
    assert (saved.status, saved.shelter_id, saved.arrived_people) == ("moved", town.shelter_id, 3)


async def test_the_shelter_link_ends_after_release_and_the_grace_period(runtime, db, town, client, duty, clock):
    wid = await issue(runtime, targets=[TOWN])
    _, token = await shelter_token(runtime, db, wid)
    await lift(runtime, wid)
    assert (await client.get(f"/s/{token}")).status_code == 200  # evacuees stay out after the lift
    r = await client.post(f"/api/v1/evacuation/warnings/{wid}/release", headers=duty, json={"region_code": TOWN})
    assert r.status_code == 200
    assert (await client.get(f"/s/{token}")).status_code == 200  # departures are recorded after release
    clock.set(clock.now() + timedelta(hours=runtime.settings.ack_link_grace_hours + 1))
    assert (await client.get(f"/s/{token}")).status_code == 410
