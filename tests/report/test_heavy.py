from __future__ import annotations

from tests.factories import login


async def test_a_report_computed_in_the_pool_is_byte_for_byte_the_one_computed_in_the_request(
        client, settings, feedback_case):
    h = await login(client, "wl_audit")
    url = f"/api/v1/reports/warnings/{feedback_case.case.warning_id}"
    for params in ({}, {"rollup": "grid", "missing_limit": 2, "nodes_offset": 3, "nodes_limit": 4},
                   {"region": "331081002", "rollup": "village"}):
        settings.report_offload_level = "never"
        here = await client.get(url, headers=h, params=params)
        settings.report_offload_level = "grid"
        pooled = await client.get(url, headers=h, params=params)
        assert here.status_code == pooled.status_code == 200
        assert here.headers["content-type"] == pooled.headers["content-type"] == "application/json"
        assert here.content == pooled.content, params
    body = pooled.json()
    assert body["totals"]["required"] == 4 and body["rollup"]["nodes_total"] > 0
    assert body["generated_at"].endswith("Z")  # as FastAPI rendered the dict before
