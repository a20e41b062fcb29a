from __future__ import annotations

from capvalidator import Validator
from lxml import etree
from sqlalchemy import func, select

from tests.early_warning.conftest import red_typhoon
from warning_service.early_warning.cap import NS
from warning_service.early_warning.models import EarlyWarning
from warning_service.notice.models import Notice

UPSTREAM = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier>
  <sender>33000041600000</sender>
  <sent>2026-07-01T15:40:00+08:00</sent>
  <status>Actual</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>{references}
  <info>
    <language>zh-CN</language>
    <category>Met</category>
    <event>暴雨</event>
    <urgency>Immediate</urgency>
    <severity>{severity}</severity>
    <certainty>Likely</certainty>
    <senderName>浙江省气象台</senderName>
    <headline>浙江省气象台发布暴雨橙色预警</headline>
    <description>预计未来3小时温岭市将出现50毫米以上降雨。</description>
    <instruction>做好山洪地质灾害防御。</instruction>
    <area>
      <areaDesc>温岭市太平街道</areaDesc>
      <geocode><valueName>GB/T 2260</valueName><value>{geocode}</value></geocode>
    </area>
  </info>
</alert>"""


def upstream(identifier="33000041600000_20260701154000_1", msg_type="Alert", severity="Severe",
             geocode="331081001000", references=""):
    return UPSTREAM.format(identifier=identifier, msg_type=msg_type, severity=severity, geocode=geocode,
                           references=references).encode()


async def test_cap_output_passes_the_oasis_schema_for_alert_update_and_cancel(client, duty, tree):
    r = await client.post("/api/v1/warnings", headers=duty, json=red_typhoon(["331081001", "331081002001"]))
    wid = r.json()["id"]
    await client.post(f"/api/v1/warnings/{wid}/update", headers=duty, json={"description": "风力增强。"})
    await client.post(f"/api/v1/warnings/{wid}/lift", headers=duty, json={"reason": "台风已减弱"})
    for revision, msg_type in ((1, "Alert"), (2, "Update"), (3, "Cancel")):
        r = await client.get(f"/api/v1/warnings/{wid}/cap", headers=duty, params={"revision": revision})
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/cap+xml")
        ok, why = Validator(r.content).schema()
        assert ok, why
        doc = etree.fromstring(r.content)
        assert doc.findtext(f"{{{NS}}}msgType") == msg_type
        assert doc.findtext(f"{{{NS}}}info/{{{NS}}}severity") == "Extreme"
        codes = [g.text for g in doc.iterfind(f".//{{{NS}}}geocode/{{{NS}}}value")]
        assert codes == ["331081001", "331081002001"]
        refs = doc.findtext(f"{{{NS}}}references")
        assert (refs is None) == (revision == 1)
        if refs:
            assert refs.count(",") == 2 * (revision - 1)


async def test_cap_input_is_issued_with_its_own_identifier_and_round_trips(client, duty, db, tree):
    r = await client.post("/api/v1/warnings/cap", headers={**duty, "content-type": "application/xml"},
                          content=upstream())
    assert r.status_code == 201, r.text
    body = r.json()
    # orange reaches the village and grid persons under the target
    assert body["identifier"] == "33000041600000_20260701154000_1" and body["recipient_count"] == 6
    async with db.session() as s:
        w = await s.get(EarlyWarning, body["id"])
    assert (w.hazard, w.level, w.sender, w.sender_code, w.source) == (
        "rainstorm", "orange", "浙江省气象台", "33000041600000", "cap")
    out = await client.get(f"/api/v1/warnings/{body['id']}/cap", headers=duty)
    doc = etree.fromstring(out.content)
    assert doc.findtext(f"{{{NS}}}identifier") == "33000041600000_20260701154000_1"
    assert doc.findtext(f"{{{NS}}}sender") == "33000041600000"
    assert doc.findtext(f"{{{NS}}}info/{{{NS}}}event") == "暴雨"
    # the same alert relayed twice changes nothing
    again = await client.post("/api/v1/warnings/cap", headers={**duty, "content-type": "application/xml"},
                              content=upstream())
    assert again.status_code == 200 and again.json()["action"] == "duplicate"
    # and the upstream cancel lifts it
    cancel = upstream(identifier="33000041600000_20260701170000_2", msg_type="Cancel",
                      references="\n  <references>33000041600000,33000041600000_20260701154000_1,"
                                 "2026-07-01T15:40:00+08:00</references>")
    r = await client.post("/api/v1/warnings/cap", headers={**duty, "content-type": "application/xml"},
                          content=cancel)
    assert r.status_code == 200 and r.json()["action"] == "lifted"


async def _nothing_written(db):
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(EarlyWarning))).scalar_one() == 0
        assert (await s.execute(select(func.count()).select_from(Notice))).scalar_one() == 0


async def test_malformed_cap_gets_422_with_line_and_writes_nothing(client, duty, db, tree):
    r = await client.post("/api/v1/warnings/cap", headers={**duty, "content-type": "application/xml"},
                          content=upstream()[:-20])
    assert r.status_code == 422
    assert "malformed" in r.json()["detail"]["message"] and r.json()["detail"]["line"]
    await _nothing_written(db)


async def test_schema_violation_gets_422_naming_the_element(client, duty, db, tree):
    bad = upstream().replace(b"<status>Actual</status>", b"<status>Sometimes</status>")
    r = await client.post("/api/v1/warnings/cap", headers={**duty, "content-type": "application/xml"}, content=bad)
    assert r.status_code == 422 and "status" in r.json()["detail"]["message"]
    await _nothing_written(db)


async def test_unknown_area_gets_422_and_writes_nothing(client, duty, db, tree):
    r = await client.post("/api/v1/warnings/cap", headers={**duty, "content-type": "application/xml"},
                          content=upstream(geocode="999999"))
    assert r.status_code == 422 and r.json()["detail"]["field"] == "area.geocode"
    await _nothing_written(db)


async def test_entities_are_refused(client, duty, db, tree):
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
            b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&lol2;</alert>')
    r = await client.post("/api/v1/warnings/cap", headers={**duty, "content-type": "application/xml"}, content=bomb)
    assert r.status_code == 422 and "entities" in r.json()["detail"]["message"]
    xxe = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&x;</identifier></alert>')
    r = await client.post("/api/v1/warnings/cap", headers={**duty, "content-type": "application/xml"}, content=xxe)
    assert r.status_code == 422
    await _nothing_written(db)


async def test_cap_outside_scope_is_forbidden(client, duty, db, tree):
    r = await client.post("/api/v1/warnings/cap", headers={**duty, "content-type": "application/xml"},
                          content=upstream(geocode="331082000000"))
    assert r.status_code == 403
    await _nothing_written(db)
