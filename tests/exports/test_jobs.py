from __future__ import annotations

import io
from datetime import timedelta

import openpyxl
from openpyxl.utils import get_column_letter
from sqlalchemy import select, update

from tests.factories import login
from warning_service.auth.models import User
from warning_service.exports.jobs import export_tick
from warning_service.exports.models import ExportJob

WL = "wl_audit"


async def _request(client, warning_id, user=WL, **params):
    h = await login(client, user)
    r = await client.post(f"/api/v1/reports/warnings/{warning_id}/exports", headers=h, params=params)
    return r, h


def _cells(content: bytes) -> dict[str, list[list[object]]]:
    wb = openpyxl.load_workbook(io.BytesIO(content))
    return {ws.title: [[c.value for c in row] for row in ws.iter_rows()] for ws in wb.worksheets}


def _formula_cells(content: bytes) -> list[str]:
    wb = openpyxl.load_workbook(io.BytesIO(content))
    return [f"{ws.title}!{c.coordinate}" for ws in wb.worksheets for row in ws.iter_rows() for c in row
            if c.data_type == "f"]


async def test_xlsx_job_goes_queued_running_done_and_its_file_equals_the_direct_export(client, runtime,
                                                                                        feedback_case):
    wid = feedback_case.case.warning_id
    r, h = await _request(client, wid, format="xlsx")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] == "queued" and job["download_url"] is None
    early = await client.get(f"/api/v1/reports/exports/{job['id']}/file", headers=h)
    assert early.status_code == 409 and early.json()["detail"]["message_zh"]
    # Asking again while it waits gives the same job, not a second one.
    again, _ = await _request(client, wid, format="xlsx")
    assert again.json()["id"] == job["id"]

    assert await export_tick(runtime) == 1

    status = (await client.get(f"/api/v1/reports/exports/{job['id']}", headers=h)).json()
    assert status["state"] == "done" and status["state_zh"] == "已完成"
    assert (status["rows_done"], status["rows_total"], status["percent"]) == (12, 12, 100.0)
    got = await client.get(status["download_url"], headers=h)
    assert got.status_code == 200 and got.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "filename*=UTF-8''" in got.headers["content-disposition"]
    assert int(got.headers["content-length"]) == status["file_size"]
    direct = await client.get(f"/api/v1/reports/warnings/{wid}.xlsx", headers=h)
    assert direct.status_code == 200
    # Same clock, same data: every sheet, every cell the same (rows, sums, the export time in the title).
    job_cells, direct_cells = _cells(got.content), _cells(direct.content)
    assert job_cells == direct_cells
    assert len(job_cells["叫应明细"]) == 3 + 12 and len(job_cells["未叫应名单"]) == 3 + 4
    assert _formula_cells(got.content) == []
    ws = openpyxl.load_workbook(io.BytesIO(got.content))["叫应明细"]
    assert ws.freeze_panes == "A4" and ws.auto_filter.ref == f"A3:{get_column_letter(ws.max_column)}{3 + 12}"
    assert ws.column_dimensions["C"].width >= 44


async def test_csv_jobs_equal_the_streamed_csv_for_every_kind_of_rows(client, runtime, feedback_case):
    wid = feedback_case.case.warning_id
    h = await login(client, WL)
    for rows in ("notices", "missing", "regions"):
        r = await client.post(f"/api/v1/reports/warnings/{wid}/exports", headers=h,
                              params={"format": "csv", "rows": rows})
        assert r.status_code == 202, r.text
    # At most three open exports per user …
    r = await client.post(f"/api/v1/reports/warnings/{wid}/exports", headers=h,
                          params={"format": "csv", "rows": "proxy"})
    assert r.status_code == 429 and r.json()["detail"]["message_zh"]
    assert await export_tick(runtime) == 1  # … built one at a time (EXPORT_WORKERS=1)
    for rows in ("feedback", "proxy"):
        r = await client.post(f"/api/v1/reports/warnings/{wid}/exports", headers=h,
                              params={"format": "csv", "rows": rows})
        assert r.status_code == 202, r.text
        await export_tick(runtime)
    while await export_tick(runtime):
        pass
    jobs = (await client.get("/api/v1/reports/exports", headers=h)).json()
    assert [j["state"] for j in jobs] == ["done"] * 5
    for j in jobs:
        got = await client.get(j["download_url"], headers=h)
        direct = await client.get(f"/api/v1/reports/warnings/{wid}.csv", headers=h, params={"rows": j["rows"]})
        assert got.content == direct.content, j["rows"]
    by_rows = {j["rows"]: j for j in jobs}
    assert by_rows["notices"]["rows_done"] == 12 and by_rows["missing"]["rows_done"] == 4
    assert by_rows["proxy"]["rows_done"] == 2


async def test_only_the_requester_within_their_scope_sees_and_downloads_a_job(client, runtime, db, case):
    wid = case.warning_id
    r, h = await _request(client, wid)
    job_id = r.json()["id"]
    other = await login(client, "lh_audit")
    assert (await client.post(f"/api/v1/reports/warnings/{wid}/exports", headers=other)).status_code == 403
    town = await login(client, "town_audit")
    r = await client.post(f"/api/v1/reports/warnings/{wid}/exports", headers=town, params={"region": "331081001"})
    assert r.status_code == 403 and r.json()["detail"]["field"] == "region"
    duty = await login(client, "wl_duty")
    assert (await client.post(f"/api/v1/reports/warnings/{wid}/exports", headers=duty)).status_code == 403
    assert (await client.post(f"/api/v1/reports/warnings/{wid}/exports")).status_code == 401
    await export_tick(runtime)
    for url in (f"/api/v1/reports/exports/{job_id}", f"/api/v1/reports/exports/{job_id}/file"):
        assert (await client.get(url, headers=h)).status_code == 200
        # Another auditor, even one whose scope holds the region, is told no such job exists.
        for who in (other, town):
            res = await client.get(url, headers=who)
            assert res.status_code == 404 and res.json()["detail"]["field"] == "job_id"
        assert (await client.get(url, headers=duty)).status_code == 403
        assert (await client.get(url)).status_code == 401
    # The requester moved to a town: the county-wide file is no longer theirs to read.
    async with db.session() as s:
        await s.execute(update(User).where(User.username == WL).values(region_code="331081002"))
    r = await client.get(f"/api/v1/reports/exports/{job_id}/file", headers=h)
    assert r.status_code == 403 and r.json()["detail"]["message_zh"]


async def test_a_running_job_whose_worker_died_is_built_again(client, runtime, db, clock, case):
    r, h = await _request(client, case.warning_id, format="csv")
    job_id = r.json()["id"]
    async with db.session() as s:
        await s.execute(update(ExportJob).where(ExportJob.id == job_id).values(
            state="running", worker="gone-host:4242", attempts=1, rows_done=5, file_name="export-x.csv",
            lease_until=clock.now() + timedelta(seconds=30), started_at=clock.now()))
    # While the dead worker's lease lasts, nobody takes the job over.
    assert await export_tick(runtime) == 0
    clock.advance(timedelta(seconds=31))
    assert await export_tick(runtime) == 1
    async with db.session() as s:
        job = await s.get(ExportJob, job_id)
    assert (job.state, job.attempts, job.rows_done) == ("done", 2, 12)
    assert job.worker != "gone-host:4242" and job.file_name != "export-x.csv"
    assert (await client.get(f"/api/v1/reports/exports/{job_id}/file", headers=h)).status_code == 200


async def test_a_job_that_keeps_losing_its_worker_fails_after_the_attempt_limit(client, runtime, db, clock, case):
    r, h = await _request(client, case.warning_id)
    job_id = r.json()["id"]
    async with db.session() as s:
        await s.execute(update(ExportJob).where(ExportJob.id == job_id).values(
            state="running", worker="gone-host:1", attempts=runtime.settings.export_max_attempts,
            lease_until=clock.now() - timedelta(seconds=1)))
    assert await export_tick(runtime) == 0
    status = (await client.get(f"/api/v1/reports/exports/{job_id}", headers=h)).json()
    assert status["state"] == "failed" and "导出" in status["error"]
    assert (await client.get(f"/api/v1/reports/exports/{job_id}/file", headers=h)).status_code == 410


async def test_finished_files_expire_and_are_removed(client, runtime, db, clock, settings, case):
    r, h = await _request(client, case.warning_id, format="csv")
    job_id = r.json()["id"]
    await export_tick(runtime)
    async with db.session() as s:
        name = (await s.execute(select(ExportJob.file_name).where(ExportJob.id == job_id))).scalar_one()
    assert (settings.export_dir / name).is_file()
    clock.advance(timedelta(hours=settings.export_ttl_hours, seconds=1))
    await export_tick(runtime)
    assert not (settings.export_dir / name).exists()
    status = (await client.get(f"/api/v1/reports/exports/{job_id}", headers=h)).json()
    assert status["state"] == "expired"
    r = await client.get(f"/api/v1/reports/exports/{job_id}/file", headers=h)
    assert r.status_code == 410 and r.json()["detail"]["message_zh"]


async def test_exports_too_large_for_a_request_are_refused_with_the_way_to_a_job(client, settings, case):
    settings.export_direct_max_rows = 11
    h = await login(client, WL)
    for ext in (".xlsx", ".csv"):
        r = await client.get(f"/api/v1/reports/warnings/{case.warning_id}{ext}", headers=h)
        assert r.status_code == 409, ext
        d = r.json()["detail"]
        assert d["code"] == "use_export_job" and d["rows"] == 12 and "/exports" in d["message"] and d["message_zh"]
    settings.export_direct_max_rows = 12
    assert (await client.get(f"/api/v1/reports/warnings/{case.warning_id}.csv", headers=h)).status_code == 200


async def test_bad_export_requests_are_422_and_change_nothing(client, db, case):
    h = await login(client, WL)
    for params, field in (({"format": "pdf"}, "format"), ({"format": "csv", "rows": "people"}, "rows")):
        r = await client.post(f"/api/v1/reports/warnings/{case.warning_id}/exports", headers=h, params=params)
        assert r.status_code == 422 and r.json()["detail"]["field"] == field, params
    r = await client.post("/api/v1/reports/warnings/99999/exports", headers=h)
    assert r.status_code == 404
    async with db.session() as s:
        assert (await s.execute(select(ExportJob))).first() is None
