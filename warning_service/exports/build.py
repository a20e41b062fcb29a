"""Builds one export's file; runs in a child process, so the parent's event loop and memory stay free.

The child opens its own database connection, reads the export in one snapshot a page at a time, streams it
to `<file>.part` (the streamed workbook or CSV) and renames it into place when complete: a file
under its final name is always whole. Progress goes to the job row in short transactions of its own.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from warning_service.db import Database
from warning_service.errors import NotFound
from warning_service.exports import service
from warning_service.exports.models import ExportFormat, ExportJob
from warning_service.region.models import Region
from warning_service.report import export, scope


@dataclass(frozen=True)
class BuildSpec:
    job_id: int
    database_url: str  # the async URL
    directory: str
    file_name: str
    now: datetime  # the export's "as of" time, from the worker's clock
    heavy_read_share: float  # of one database core (lane.py)


@dataclass(frozen=True)
class BuildResult:
    rows: int
    size: int
    db_seconds: float = 0.0  # time its statements held the heavy-read lane (lane.py)
    rested_seconds: float = 0.0  # and the rests that followed, left to the answers


def build_in_child(spec: BuildSpec) -> BuildResult:
    """Entry point for the process pool."""
    return asyncio.run(_build_with_own_database(spec))


async def _build_with_own_database(spec: BuildSpec) -> BuildResult:
    db = Database(spec.database_url, pool_size=2, heavy_read_share=spec.heavy_read_share)
    try:
        result = await build(db, spec)
        if db.lane is None:
            return result
        return replace(result, db_seconds=round(db.lane.busy, 3), rested_seconds=round(db.lane.rested, 3))
    finally:
        await db.dispose()


async def build(db: Database, spec: BuildSpec) -> BuildResult:
    async with db.session() as s:
        job = await s.get(ExportJob, spec.job_id)
        if job is None:
            raise NotFound(f"export {spec.job_id} not found", f"导出任务 {spec.job_id} 不存在")
        region = await s.get(Region, job.region_code)
        if region is None:
            raise NotFound(f"region {job.region_code} not found", f"区划 {job.region_code} 不存在")
        fmt, rows, warning_id = ExportFormat(job.format), job.rows, job.warning_id

    async def progress(done: int, total: int) -> None:
        async with db.session() as s:
            await service.record_progress(s, job_id=spec.job_id, file_name=spec.file_name, done=done, total=total)

    # This loop is the child's own and serves nothing else: blocking file calls here stall no one.
    directory = Path(spec.directory)
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    final = directory / spec.file_name
    part = final.with_name(final.name + ".part")
    written = 0
    try:
        async with scope.snapshot(db) as s:
            scoped = await scope.scoped_warning(s, warning_id=warning_id, region=region)
            with open(part, "wb") as out:  # noqa: ASYNC230
                if fmt is ExportFormat.xlsx:
                    written = await export.write_workbook(s, scoped=scoped, now=spec.now, out=out, progress=progress)
                else:
                    total = 0

                    async def counted(done: int, of: int) -> None:
                        nonlocal total
                        total = done
                        await progress(done, of)

                    async for chunk in export.csv_chunks(s, scoped=scoped, rows=rows, now=spec.now,
                                                         progress=counted):
                        out.write(chunk)
                    written = total
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
    return BuildResult(rows=written, size=final.stat().st_size)
