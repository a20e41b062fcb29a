"""Hostile input gets a 4xx naming the field, never a 500; settings and the demo refuse unsafe production use."""

from __future__ import annotations

import logging
import re

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.acknowledgment.conftest import issue, notice_of, token_for
from tests.conftest import make_settings

GRID = "33108100100101"


async def test_nul_bytes_are_refused_with_a_field(client, duty, runtime, settings, db, tree):
    r = await client.post("/api/v1/auth/token", data={"username": "wl\x00duty", "password": "x"})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "body"
    r = await client.get("/api/v1/people", params={"q": "张\x00"}, headers=duty)
    assert r.status_code == 422 and r.json()["detail"]["field"] == "query"
    token = token_for(settings, (await notice_of(db, await issue(runtime, targets=[GRID]),
                                                 tree.person(GRID, "grid_responsible"))).id)
    r = await client.post(f"/a/{token}/feedback", json={"note": "a\x00b"})
    assert r.status_code == 422


async def test_numbers_beyond_64_bits_are_refused(client, duty, tree):
    r = await client.get("/api/v1/people", params={"offset": str(2**63)}, headers=duty)
    assert r.status_code == 422 and r.json()["detail"]["field"] == "offset"
    assert (await client.get(f"/api/v1/people/{2**64}", headers=duty)).status_code == 422
    wl = tree.person(GRID, "grid_responsible")
    r = await client.patch(f"/api/v1/people/{wl}", json={"deputy_id": 2**70}, headers=duty)
    assert 400 <= r.status_code < 500


async def test_json_nested_100k_deep_is_a_400(client, runtime, settings, db, tree):
    token = token_for(settings, (await notice_of(db, await issue(runtime, targets=[GRID]),
                                                 tree.person(GRID, "grid_responsible"))).id)
    deep = b"[" * 100_000 + b"]" * 100_000
    r = await client.post(f"/a/{token}/feedback", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = await client.post("/api/v1/auth/token", content=deep, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500


async def test_utf16_cap_with_a_dtd_is_refused(client, duty):
    xml = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE alert [<!ENTITY x "y">]>'
           '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&x;</identifier></alert>')
    r = await client.post("/api/v1/warnings/cap", content=xml.encode("utf-16"),
                          headers={"Content-Type": "application/xml", **duty})
    assert 400 <= r.status_code < 500, r.text


def _json_operations(app):
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if schema is not None:
                yield method.upper(), re.sub(r"\{[^}]+\}", "1", path), schema


async def test_generated_bodies_for_every_json_operation_never_give_5xx(app, client, duty):
    """Property run over the OpenAPI description: bodies drawn from each operation's schema (and junk)."""
    components = app.openapi().get("components", {})
    operations = list(_json_operations(app))
    assert len(operations) >= 6
    for method, path, schema in operations:
        ref = schema.get("$ref", "")
        props = components.get("schemas", {}).get(ref.rsplit("/", 1)[-1], schema).get("properties", {})
        junk = st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                            lambda c: st.lists(c) | st.dictionaries(st.text(), c))
        bodies: list = []

        @hsettings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        # The operation's own field names with values of any shape, and bodies of any shape at all.
        @given(st.one_of(st.fixed_dictionaries({}, optional={k: junk for k in props}), junk))
        def collect(body):
            bodies.append(body)  # noqa: B023 — collect() runs right here, inside this iteration

        collect()
        for body in bodies:
            r = await client.request(method, path, json=body, headers=duty)
            assert r.status_code < 500, (method, path, body, r.text)


def test_short_secret_key_is_refused_in_production(db):
    with pytest.raises(ValueError, match="32 characters"):
        make_settings(db, environment="production", secret_key="abcdefgh")
    assert make_settings(db, environment="production", secret_key="k" * 32).environment == "production"


def test_demo_refuses_production(db):
    from warning_service.demo import DemoRefused, prepare_demo

    with pytest.raises(DemoRefused, match="production"):
        prepare_demo(make_settings(db, environment="production", secret_key="k" * 40))


def test_chatty_http_client_loggers_are_at_warning():
    from warning_service.logging import configure_logging

    configure_logging("INFO")
    for name in ("twilio", "twilio.http_client", "aiohttp", "httpx"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING


async def test_sql_parameters_never_reach_tracebacks(db, tree):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as err:
        async with db.session() as s:
            await s.execute(text("INSERT INTO person (id, name) VALUES (:id, :name)"),
                            {"id": 1, "name": "张三13900001111"})
    assert "张三13900001111" not in str(err.value)
