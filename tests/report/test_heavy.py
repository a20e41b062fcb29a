from __future__ import annotations

from tests.factories import login
from warning_service.report import export, service


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


async def test_a_report_being_built_holds_no_connection_of_the_request(client, settings, runtime, feedback_case,
                                                                        monkeypatch):
    """The request's transaction ends before the long part: it used to sit idle in transaction while the child
    built the report (or beside the report's own snapshot), holding a pool connection and the vacuum horizon."""
    h = await login(client, "wl_audit")
    url = f"/api/v1/reports/warnings/{feedback_case.case.warning_id}"
    pool = runtime.db.engine.pool
    held: dict[str, int] = {}
    run, build = runtime.report_pool.run, service.warning_report

    async def run_counting(fn, spec):
        held["offloaded"] = pool.checkedout()
        return await run(fn, spec)

    async def build_counting(session, **kw):
        held["in the request"] = pool.checkedout()  # the snapshot's own (on SQLite taken at its first read)
        return await build(session, **kw)

    monkeypatch.setattr(runtime.report_pool, "run", run_counting)
    monkeypatch.setattr(service, "warning_report", build_counting)
    for level in ("grid", "never"):
        settings.report_offload_level = level
        assert (await client.get(url, headers=h)).status_code == 200
    assert held == {"offloaded": 0, "in the request": 0 if runtime.db.is_sqlite else 1}


async def test_a_csv_being_streamed_holds_no_connection_of_the_request(client, runtime, feedback_case, monkeypatch):
    """The request's session closes only once the response is sent: its transaction ends before the stream."""
    h = await login(client, "wl_audit")
    pool = runtime.db.engine.pool
    held: list[int] = []
    chunks = export.csv_chunks

    async def counting(session, **kw):
        async for chunk in chunks(session, **kw):
            held.append(pool.checkedout())  # the stream's own snapshot at most
            yield chunk

    monkeypatch.setattr(export, "csv_chunks", counting)
    r = await client.get(f"/api/v1/reports/warnings/{feedback_case.case.warning_id}.csv", headers=h)
    assert r.status_code == 200 and max(held) == 1  # (on SQLite the header goes before its first read)
