"""Every HTML response carries the security headers; bodies are bounded per route class (413)."""

from __future__ import annotations

import json

from tests.acknowledgment.conftest import issue, notice_of, token_for
from tests.factories import PASSWORD

GRID = "33108100100101"
REQUIRED = {"x-frame-options": "DENY", "x-content-type-options": "nosniff"}


def _all_routes(app):
    """Every route, including those of included routers (the pages are left out of the OpenAPI description)."""
    for route in app.routes:
        inner = getattr(route, "original_router", None)
        yield from (inner.routes if inner is not None else [route])


def _assert_secured(r) -> None:
    assert r.headers["content-type"].startswith("text/html"), (r.request.url, r.headers["content-type"])
    for k, v in REQUIRED.items():
        assert r.headers.get(k) == v, (r.request.url, k)
    assert "default-src" in r.headers["content-security-policy"]
    assert r.headers.get("referrer-policy")


async def test_every_html_route_carries_the_security_headers(app, client, runtime, settings, db, tree):
    wid = await issue(runtime, targets=[GRID])
    notice = await notice_of(db, wid, tree.person(GRID, "grid_responsible"))
    await client.post("/console/login", data={"username": "wl_duty", "password": PASSWORD})
    values = {"warning_id": str(wid), "token": token_for(settings, notice.id)}
    seen = []
    for route in _all_routes(app):
        if "GET" not in getattr(route, "methods", set()):
            continue
        path = route.path
        for name, value in values.items():
            path = path.replace("{" + name + "}", value)
        if "{" in path:
            continue
        r = await client.get(path, headers={"Accept": "text/html"})
        if r.headers.get("content-type", "").startswith("text/html"):
            _assert_secured(r)
            seen.append(route.path)
    assert {"/docs", "/redoc", "/console/login", "/console/reports", "/console/warnings/{warning_id}",
            "/a/{token}"} <= set(seen), seen
    docs = await client.get("/docs")
    nonce = docs.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}"' in docs.text  # the docs page's own inline script still runs


async def test_a_huge_json_body_to_the_public_feedback_endpoint_is_refused(client, runtime, settings, db, tree):
    wid = await issue(runtime, targets=[GRID])
    token = token_for(settings, (await notice_of(db, wid, tree.person(GRID, "grid_responsible"))).id)
    big = json.dumps({"note": "x" * (2 * 1024 * 1024)}).encode()
    r = await client.post(f"/a/{token}/feedback", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "256 KB" in r.json()["detail"]["message"]

    async def streamed():  # no Content-Length: counted as it arrives
        for _ in range(64):
            yield b" " * 65536

    r = await client.post(f"/a/{token}/feedback", content=streamed(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


async def test_cap_is_limited_to_1_mb_while_streaming(client, duty):
    sent = 0

    async def streamed():
        nonlocal sent
        for _ in range(100):  # 6.4 MB offered
            sent += 65536
            yield b"<!--" + b" " * 65528 + b"-->"

    r = await client.post("/api/v1/warnings/cap", content=streamed(),
                          headers={"Content-Type": "application/xml", **duty})
    assert r.status_code == 413 and r.json()["detail"]["code"] == "too_large"
    assert sent <= 2 * 1024 * 1024  # refused at the limit, not after reading everything
