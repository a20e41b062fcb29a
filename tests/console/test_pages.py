"""Login, landing pages and the menu by role, expiry back to the same page, scope limits — over HTTP and in Chromium."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from tests.console.conftest import browser_only, log_in
from tests.early_warning.conftest import red_typhoon
from tests.escalation.conftest import GRID, run_sweeps
from tests.factories import PASSWORD, login
from warning_service.deps import TOKEN_COOKIE
from warning_service.person.models import Person


async def cookie_login(client, username: str, next_path: str = "") -> None:
    r = await client.post("/console/login", data={"username": username, "password": PASSWORD, "next": next_path})
    assert r.status_code == 303, r.text


@pytest.mark.parametrize(("username", "landing"), [("wl_duty", "/console/warnings"),
                                                   ("wl_leader", "/console/approvals"),
                                                   ("wl_audit", "/console/reports"),
                                                   ("wl_admin", "/console/people")])
async def test_each_role_lands_on_its_own_page(client, tree, username, landing):
    r = await client.post("/console/login", data={"username": username, "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == landing
    page = await client.get(landing)
    assert page.status_code == 200 and "无权" not in page.text


async def test_the_menu_shows_only_what_the_role_may_use(client, tree):
    await cookie_login(client, "wl_duty")
    html = (await client.get("/console/warnings")).text
    assert "预警发布" in html and "人员名册" in html and "/console/audit" not in html
    client.cookies.clear()
    await cookie_login(client, "wl_audit")
    html = (await client.get("/console/warnings")).text
    assert "叫应统计" in html and "审计" in html and "/console/issue" not in html
    assert (await client.get("/console/issue")).status_code == 403


async def test_a_wrong_password_keeps_the_username_and_says_nothing_more(client, tree):
    r = await client.post("/console/login", data={"username": "wl_duty", "password": "nope-nope"})
    assert r.status_code == 401
    assert 'value="wl_duty"' in r.text and "用户名或密码错误" in r.text
    assert "审计人员" not in r.text


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"])
async def test_login_never_redirects_off_the_site(client, tree, target):
    r = await client.post("/console/login", data={"username": "wl_duty", "password": PASSWORD, "next": target})
    assert r.headers["location"] == "/console/warnings"


async def test_an_expired_session_returns_to_the_same_page_after_login(client, tree, settings):
    expired = jwt.encode({"sub": "1", "exp": 1}, settings.secret_key.get_secret_value(), algorithm="HS256")
    client.cookies.set(TOKEN_COOKIE, expired)
    r = await client.get("/console/warnings?state=active&level=red")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login?next=%2Fconsole%2Fwarnings%3Fstate%3Dactive%26level%3Dred"
    client.cookies.clear()
    back = await client.post("/console/login", data={"username": "wl_duty", "password": PASSWORD,
                                                     "next": "/console/warnings?state=active&level=red"})
    assert back.headers["location"] == "/console/warnings?state=active&level=red"


async def test_list_filters_and_figures(client, tree):
    duty = await login(client, "wl_duty")
    a = (await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001"]))).json()
    b = (await client.post("/api/v1/warnings", headers=duty, json={
        "hazard": "rainstorm", "level": "blue", "status": "exercise", "description": "演练", "targets": ["331081002"]
    })).json()
    await client.post(f"/api/v1/warnings/{b['id']}/lift", headers=duty, json={"reason": "演练结束"})
    await cookie_login(client, "wl_duty")
    html = (await client.get("/console/warnings")).text
    assert html.index(f'data-id="{a["id"]}"') < html.index(f'data-id="{b["id"]}"')  # active first
    assert "0.0%" in html  # 叫应率 of the red warning, nobody answered yet
    only = (await client.get("/console/warnings?level=blue&status=exercise&state=lifted")).text
    assert f'data-id="{b["id"]}"' in only and f'data-id="{a["id"]}"' not in only
    bad = await client.get("/console/warnings?from=yesterday")
    assert bad.status_code == 422 and "起始日期" in bad.text


async def test_regions_of_another_county_are_neither_offered_nor_accepted(client, tree):
    duty = await login(client, "wl_duty")
    found = (await client.get("/api/v1/regions/search", params={"q": "街道"}, headers=duty)).json()
    assert found and all(r["code"].startswith("331081") for r in found)
    assert (await client.get("/api/v1/regions/331082/children", headers=duty)).status_code == 403
    for url in ("/api/v1/warnings/preview", "/api/v1/warnings"):
        r = await client.post(url, headers=duty, json=red_typhoon(["331081001", "331082"]))
        assert r.status_code == 403 and r.json()["detail"]["field"] == "targets"
        assert "不在您的管辖范围" in r.json()["detail"]["message_zh"]


async def test_offline_docs_reference_only_local_assets(client, tree):
    for path in ("/docs", "/redoc"):
        html = (await client.get(path)).text
        assert "cdn.jsdelivr.net" not in html and "fonts.googleapis" not in html and "/static/docs/" in html
    assert (await client.get("/static/docs/swagger-ui-bundle.js")).status_code == 200
    assert (await client.get("/static/docs/redoc.standalone.js")).status_code == 200


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
@browser_only[1]
@browser_only[0]
async def test_auditor_and_admin_land_on_their_pages_in_chromium(chromium, viewport, tree):
    for username, landing, name in (("wl_audit", "/console/reports", "auditor-reports"),
                                    ("wl_leader", "/console/approvals", "leader-approvals"),
                                    ("wl_admin", "/console/people", "admin-people")):
        page = await chromium.page(viewport)
        await log_in(page, chromium.base, username, "/console/", lands=landing)
        assert "无权" not in await page.locator("body").inner_text()
        await chromium.shot(page, f"{viewport}-{name}")
        if username == "wl_audit":
            await page.goto(f"{chromium.base}/console/audit")
            await chromium.shot(page, f"{viewport}-audit")
        await page.click("#logout") if await page.locator("#logout").count() else None
        await page.context.close()


@browser_only[1]
@browser_only[0]
async def test_a_stranger_is_sent_to_the_login_and_back(chromium, tree):
    page = await chromium.page("desktop")
    await log_in(page, chromium.base, "wl_duty", "/console/people?role=village_responsible")
    assert "人员名册" in await page.locator("h1").inner_text()
    await page.click("#logout")
    await page.wait_for_url(f"{chromium.base}/console/login")
    await page.goto(f"{chromium.base}/console/warnings")
    assert "/console/login?next=" in page.url
    await page.fill("input[name=username]", "wl_duty")
    await page.fill("input[name=password]", "wrong-password")
    await page.click("button[type=submit]")
    assert await page.locator("input[name=username]").input_value() == "wl_duty"
    await chromium.shot(page, "desktop-login-error")


@browser_only[1]
@browser_only[0]
async def test_roster_upload_in_the_browser_lists_every_bad_row(chromium, tree, tmp_path, db):
    bad = tmp_path / "名册.csv"
    bad.write_text("region_code,name,role,phone,email\n"
                   "331081001001,,village_responsible,13812345679,\n"
                   "331081001002,李海燕,village_responsible,12345,\n"
                   "331082001,张志强,town_responsible,13812345680,\n", encoding="utf-8")
    page = await chromium.page("phone")
    await log_in(page, chromium.base, "wl_duty", "/console/people")
    await page.set_input_files("#upload-file", str(bad))
    await page.click("#upload-form button")
    await page.wait_for_selector("#upload-errors:not([hidden])")
    assert "共 3 处错误" in await page.locator("#upload-result").inner_text()
    cells = await page.locator("#upload-errors tbody tr").all_inner_texts()
    assert [c.split("\t")[:2] for c in cells] == [["2", "姓名"], ["3", "手机"], ["4", "区划代码"]]
    await chromium.shot(page, "phone-people-upload-errors")


async def test_escalations_name_the_silent_person_they_are_about(client, tree, db, clock):
    duty = await login(client, "wl_duty")
    wid = (await client.post("/api/v1/warnings", headers=duty, json=red_typhoon([GRID]))).json()["id"]
    t0 = clock.now()
    for minute in (3, 6, 9, 12):  # three re-calls, then the village above is told
        await run_sweeps(db, t0 + timedelta(minutes=minute))
    esc = (await client.get(f"/api/v1/warnings/{wid}/notices?reason=escalation", headers=duty)).json()["items"]
    async with db.session() as s:
        silent = await s.get(Person, tree.person(GRID, "grid_responsible"))
    assert len(esc) == 1 and esc[0]["role"] == "village_responsible"
    assert esc[0]["subject"]["name"] == silent.name and esc[0]["subject"]["phone"] == silent.phone
    assert esc[0]["subject"]["region_path"].endswith("横湖村第1网格") or GRID in esc[0]["subject"]["region_path"]
