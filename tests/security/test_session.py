"""Cookie sessions: cross-site writes refused (CSRF), bearer tokens unaffected, logout revokes the token."""

from __future__ import annotations

from tests.factories import PASSWORD, login
from warning_service.deps import TOKEN_COOKIE

GRID = "33108100100101"


async def _cookie_login(client) -> str:
    r = await client.post("/console/login", data={"username": "wl_duty", "password": PASSWORD})
    assert r.status_code == 303, r.text
    return r.cookies[TOKEN_COOKIE]


async def _issue(client, **headers):
    body = {"hazard": "typhoon", "level": "blue", "description": "演练", "targets": [GRID], "status": "exercise"}
    return await client.post("/api/v1/warnings", json=body, headers=headers)


async def test_a_cross_site_form_post_with_the_cookie_is_refused(client, tree):
    await _cookie_login(client)
    r = await client.post("/api/v1/warnings/1/lift", data={"description": "x"},
                          headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert r.json()["detail"]["field"] == "origin"
    r = await _issue(client)  # no Origin, no Referer: not provably ours
    assert r.status_code == 403


async def test_a_same_origin_write_with_the_cookie_works(client, tree):
    await _cookie_login(client)
    assert (await _issue(client, Origin="http://testserver")).status_code == 201
    assert (await _issue(client, Referer="http://testserver/console/warnings/1")).status_code == 201


async def test_bearer_requests_need_no_origin(client, tree):
    headers = await login(client, "wl_duty")
    client.cookies.clear()
    assert (await _issue(client, **headers)).status_code == 201


async def test_logout_revokes_the_token(client, tree):
    headers = await login(client, "wl_duty")
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 200
    assert (await client.post("/api/v1/auth/logout", headers=headers)).status_code == 204
    r = await client.get("/api/v1/auth/me", headers=headers)
    assert r.status_code == 401 and "令牌已注销" in r.json()["detail"]["message_zh"]
    fresh = await login(client, "wl_duty")
    assert (await client.get("/api/v1/auth/me", headers=fresh)).status_code == 200


async def test_console_logout_revokes_the_cookie_token(client, tree):
    token = await _cookie_login(client)
    r = await client.post("/console/logout", headers={"Origin": "http://testserver"})
    assert r.status_code == 303
    client.cookies.clear()
    r = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


async def test_console_login_is_throttled_too(client, tree, settings):
    for i in range(settings.login_failures_per_username):
        await client.post("/console/login", data={"username": "wl_duty", "password": f"wrong-{i}"})
    r = await client.post("/console/login", data={"username": "wl_duty", "password": PASSWORD})
    assert r.status_code == 429 and "登录失败次数过多" in r.text
