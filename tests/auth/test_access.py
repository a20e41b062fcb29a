from __future__ import annotations

import pytest

from tests.factories import build_tree, login, make_user


@pytest.fixture
async def tree(db, clock):
    t = await build_tree(db, now=clock.now())
    await make_user(db, username="wl_duty", role="duty_officer", region="331081", now=clock.now())
    await make_user(db, username="wl_audit", role="auditor", region="331081", now=clock.now())
    await make_user(db, username="zj_admin", role="admin", region="33", now=clock.now())
    return t


async def test_every_api_endpoint_requires_a_token(client, tree):
    r = await client.get("/api/v1/people")
    assert r.status_code == 401
    assert r.json()["detail"]["message_zh"]


async def test_wrong_password_is_refused(client, tree):
    r = await client.post("/api/v1/auth/token", data={"username": "wl_duty", "password": "nope-nope"})
    assert r.status_code == 401


async def test_county_duty_officer_gets_403_outside_the_county(client, tree):
    h = await login(client, "wl_duty")
    assert (await client.get("/api/v1/regions/331081/children", headers=h)).status_code == 200
    r = await client.get("/api/v1/regions/331082/children", headers=h)
    assert r.status_code == 403 and r.json()["detail"]["field"] == "region"
    r = await client.post("/api/v1/people", headers=h, json={
        "region_code": "331082001001", "name": "外县", "role": "village_responsible", "phone": "13912340000"})
    assert r.status_code == 403
    listed = (await client.get("/api/v1/people", headers=h, params={"limit": 1000})).json()
    assert listed["total"] > 0
    assert all(p["region_code"].startswith("331081") for p in listed["items"])


async def test_auditor_can_read_but_not_write(client, tree):
    h = await login(client, "wl_audit")
    assert (await client.get("/api/v1/people", headers=h)).status_code == 200
    r = await client.post("/api/v1/people", headers=h, json={
        "region_code": "331081001001", "name": "新人", "role": "village_responsible", "phone": "13912340000"})
    assert r.status_code == 403


async def test_duty_officer_manages_people_in_scope(client, tree):
    h = await login(client, "wl_duty")
    r = await client.post("/api/v1/people", headers=h, json={
        "region_code": "331081001001", "name": "新人", "role": "geo_hazard_monitor", "phone": "139 1234 0000"})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert r.json()["phone"] == "+8613912340000"
    r = await client.patch(f"/api/v1/people/{pid}", headers=h, json={"phone": "12"})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "phone"
    assert (await client.get(f"/api/v1/people/{pid}", headers=h)).json()["phone"] == "+8613912340000"
    r = await client.patch(f"/api/v1/people/{pid}", headers=h, json={"deputy_id": tree.person(
        "331081001001", "village_responsible")})
    assert r.status_code == 200 and r.json()["deputy_id"]
    assert (await client.delete(f"/api/v1/people/{pid}", headers=h)).status_code == 204
    assert (await client.get(f"/api/v1/people/{pid}", headers=h)).json()["active"] is False


async def test_admin_creates_users_only_inside_own_scope(client, tree):
    h = await login(client, "zj_admin")
    r = await client.post("/api/v1/users", headers=h, json={
        "username": "lh_duty", "password": "long-enough-pw", "role": "duty_officer", "region_code": "331082"})
    assert r.status_code == 201
    h2 = await login(client, "wl_duty")
    r = await client.post("/api/v1/users", headers=h2, json={
        "username": "x", "password": "long-enough-pw", "role": "admin", "region_code": "331081"})
    assert r.status_code == 403


async def test_roster_health_endpoint(client, tree):
    h = await login(client, "wl_audit")
    r = await client.get("/api/v1/people/health", headers=h, params={"level": "grid"})
    assert r.status_code == 200
    assert r.json()["regions_without_responsible_total"] == 0
