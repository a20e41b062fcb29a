"""A big report computed and encoded in a child process: the grouping of ~10^5 roll-up rows and the JSON
of a large page are CPU work that, on the event loop, would stall every answer the API serves meanwhile.

The child computes exactly what the request would (the same service, the same snapshot) and returns the
encoded body; `encode` is also what the request itself uses, so both paths give the same bytes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import TypeAdapter

from warning_service.db import Database
from warning_service.errors import NotFound
from warning_service.region.models import LEVEL_ORDER, Region
from warning_service.report import scope, service

_BODY = TypeAdapter(dict[str, Any])


def encode(report: dict[str, Any]) -> bytes:
    """The report as FastAPI renders a `dict[str, Any]` response: pydantic's JSON mode, compact UTF-8."""
    return JSONResponse(_BODY.dump_python(report, mode="json")).body


def offloaded(region: Region, *, level: str) -> bool:
    """Reports over regions at `level` or above go to the pool ("never": none do)."""
    return level != "never" and LEVEL_ORDER.get(region.level, 99) <= LEVEL_ORDER[level]


@dataclass(frozen=True)
class ReportSpec:
    database_url: str
    warning_id: int
    region_code: str
    now: datetime
    rollup: str
    missing_offset: int
    missing_limit: int
    proxy_offset: int
    proxy_limit: int
    nodes_offset: int
    nodes_limit: int | None
    heavy_read_share: float  # of one database core (lane.py)


# In a pool child: one event loop for its life, and one engine per database, so a report reuses connections.
# (The lane's share is fixed by the first report a child serves: settings do not change under a running API.)
_loop: asyncio.AbstractEventLoop | None = None
_databases: dict[str, Database] = {}


def report_json(spec: ReportSpec) -> bytes:
    """Entry point for the process pool: the encoded report."""
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    return _loop.run_until_complete(_report(spec))


async def _report(spec: ReportSpec) -> bytes:
    db = _databases.get(spec.database_url)
    if db is None:
        db = _databases[spec.database_url] = Database(spec.database_url, pool_size=2,
                                                      heavy_read_share=spec.heavy_read_share)
    async with scope.snapshot(db) as s:
        region = await s.get(Region, spec.region_code)
        if region is None:
            raise NotFound(f"region {spec.region_code} not found", f"区划 {spec.region_code} 不存在")
        # The caller was authorised in the request; this only reads the same warning seen from the same region.
        scoped = await scope.scoped_warning(s, warning_id=spec.warning_id, region=region)
        report = await service.warning_report(
            s, scoped=scoped, now=spec.now, rollup=spec.rollup, missing_offset=spec.missing_offset,
            missing_limit=spec.missing_limit, proxy_offset=spec.proxy_offset, proxy_limit=spec.proxy_limit,
            nodes_offset=spec.nodes_offset, nodes_limit=spec.nodes_limit)
    return encode(report)
