"""No caller publishes under another issuer's name; the CAP relay names no other county's warning."""

from __future__ import annotations

import pytest

from tests.early_warning.test_cap import upstream
from tests.factories import login

GRID = "33108100100101"
LINHAI_VILLAGE = "331082001001"
XML = {"Content-Type": "application/xml"}


@pytest.mark.parametrize("field,value", [("identifier", "33000041600000_20260701154000_9"),
                                         ("sender_code", "33108200000000"), ("sender", "临海市防汛防台抗旱指挥部")])
async def test_issuer_fields_are_refused_from_api_callers(client, duty, field, value):
    body = {"hazard": "typhoon", "level": "blue", "description": "x", "targets": [GRID], field: value}
    r = await client.post("/api/v1/warnings", json=body, headers=duty)
    assert r.status_code == 422 and r.json()["detail"]["field"] == field


async def test_the_sender_is_derived_from_the_callers_scope(client, duty):
    body = {"hazard": "typhoon", "level": "blue", "description": "x", "targets": [GRID]}
    wid = (await client.post("/api/v1/warnings", json=body, headers=duty)).json()["id"]
    w = (await client.get(f"/api/v1/warnings/{wid}", headers=duty)).json()
    assert w["sender"].startswith("温岭市") and w["identifier"].startswith("331081")


async def test_cap_from_an_untrusted_sender_is_refused(client, duty):
    xml = upstream().replace(b"33000041600000", b"33108200000000")
    r = await client.post("/api/v1/warnings/cap", content=xml, headers={**XML, **duty})
    assert r.status_code == 403 and r.json()["detail"]["field"] == "sender"


async def test_a_duplicate_identifier_from_another_county_reveals_no_warning_id(client, duty, tree):
    linhai = await login(client, "lh_duty")
    r = await client.post("/api/v1/warnings/cap", content=upstream(geocode=LINHAI_VILLAGE),
                          headers={**XML, **linhai})
    assert r.status_code == 201, r.text
    theirs = r.json()["id"]
    r = await client.post("/api/v1/warnings/cap", content=upstream(geocode="331081001001"),
                          headers={**XML, **duty})
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert "id" not in detail and "warning_id" not in detail and f'"id":{theirs}' not in r.text
