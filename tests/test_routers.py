"""The order routes are tried in: every route reachable at its own path, the hot public paths tried first."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute
from starlette.routing import Match

from warning_service.main import create_app

PARAM = re.compile(r"\{[^}]+\}")


def _in_match_order(routes):
    """Routes as the app tries them: an included router's routes one by one, where it stands."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        yield from (_in_match_order(inner.routes) if inner is not None else [route])


def _first_match(routes, *, path: str, method: str):
    scope = {"type": "http", "path": path, "root_path": "", "method": method, "headers": []}
    return next((r for r in routes if r.matches(scope)[0] == Match.FULL), None)


def test_every_api_route_is_reached_at_its_own_path(settings):
    routes = list(_in_match_order(create_app(settings, start_worker=False).router.routes))
    shadowed = []
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        path = PARAM.sub("7", route.path)
        for method in route.methods:
            if _first_match(routes, path=path, method=method) is not route:
                shadowed.append((method, route.path))
    assert shadowed == []


def test_liveness_answers_and_receipts_are_tried_before_the_console_and_the_api(settings):
    paths = [getattr(r, "path", "") for r in _in_match_order(create_app(settings, start_worker=False).router.routes)]
    first_other = min(i for i, p in enumerate(paths) if p.startswith(("/api/", "/console", "/docs")))
    for hot in ("/healthz", "/a/{token}", "/webhooks/twilio/sms", "/webhooks/twilio/status",
                "/webhooks/aliyun/sms/report", "/webhooks/aliyun/sms/up"):
        assert paths.index(hot) < first_other, hot
