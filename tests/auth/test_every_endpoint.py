from __future__ import annotations

import re

OPEN = {"/api/v1/auth/token"}


def api_routes(app):
    """Every operation under /api/v1, from the OpenAPI description (it lists included routers too)."""
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/api/v1") and path not in OPEN:
            for method in operations:
                yield method.upper(), re.sub(r"\{[^}]+\}", "1", path)


async def test_every_api_endpoint_refuses_a_request_without_a_token(app, client, db):
    routes = list(api_routes(app))
    assert len(routes) > 15
    for method, path in routes:
        r = await client.request(method, path)
        assert r.status_code == 401, f"{method} {path} answered {r.status_code} without a token"


async def test_every_api_endpoint_refuses_a_forged_token(app, client, db):
    import jwt

    forged = jwt.encode({"sub": "1", "exp": 9_999_999_999}, "not-the-key-" * 4, algorithm="HS256")
    for method, path in api_routes(app):
        r = await client.request(method, path, headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401, f"{method} {path} answered {r.status_code} to a forged token"
