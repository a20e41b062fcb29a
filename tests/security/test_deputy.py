"""A deputy (B岗) must be someone the officer may see: another county's person is 'not found', like a missing id."""

from __future__ import annotations

GRID = "33108100100101"
LINHAI_VILLAGE = "331082001001"


async def test_foreign_and_missing_deputies_are_both_not_found(client, duty, tree):
    wl = tree.person(GRID, "grid_responsible")
    foreign = tree.person(LINHAI_VILLAGE, "village_responsible")
    r_foreign = await client.patch(f"/api/v1/people/{wl}", json={"deputy_id": foreign}, headers=duty)
    r_missing = await client.patch(f"/api/v1/people/{wl}", json={"deputy_id": 999_999}, headers=duty)
    assert r_foreign.status_code == r_missing.status_code == 404
    assert r_foreign.json()["detail"]["field"] == r_missing.json()["detail"]["field"] == "deputy_id"
    body = {"region_code": GRID, "name": "张三", "role": "grid_deputy", "phone": "13911112222",
            "deputy_id": foreign}
    assert (await client.post("/api/v1/people", json=body, headers=duty)).status_code == 404
    r = await client.get(f"/api/v1/people/{wl}", headers=duty)
    assert r.json()["deputy_id"] is None


async def test_a_deputy_in_scope_is_accepted(client, duty, tree):
    wl = tree.person(GRID, "grid_responsible")
    village = tree.person("331081001001", "village_responsible")
    r = await client.patch(f"/api/v1/people/{wl}", json={"deputy_id": village}, headers=duty)
    assert r.status_code == 200 and r.json()["deputy_id"] == village
