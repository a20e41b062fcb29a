"""CPU of one export job's build on a warning already in the database (e.g. the Zhejiang-wide one).

    python -m bench.export_cpu [--database-url postgresql://postgres@127.0.0.1:5432/ws_exports] [--warning 1]
                               [--region 33] [--format xlsx|csv] [--rows notices] [--runs 1] [--parts]

Adds an export_job row (running, as the worker would have claimed it) and runs `build_in_child` in this
process, so `time.process_time()` is the build's own CPU; PostgreSQL's CPU is read from /proc for every
postgres process (other sessions' queries count too: run it when PostgreSQL is otherwise idle). Deletes the
job row and its file afterwards. Prints wall, own CPU, PostgreSQL CPU, rows, file size and the load average.
`--parts` also times the reads the workbook is made of, without writing anything: the report and its
roll-up, every region node of the grid roll-up, every notice row (叫应明细); then the region sheet
(分区统计: its nodes built and written to a workbook of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

import warning_service
from warning_service import heap
from warning_service.config import async_database_url
from warning_service.db import Database
from warning_service.exports.build import BuildSpec, build_in_child
from warning_service.region.models import Region
from warning_service.report import export, scope
from warning_service.report.missing import iter_notices
from warning_service.report.service import report_and_rollup

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/ws_exports"
WORKER = "bench.export_cpu"


def postgres_cpu() -> float:
    """CPU seconds used so far by every process named postgres (user + system, with reaped children)."""
    ticks = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        if "(postgres)" not in stat:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        ticks += sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def add_job(url: str, *, warning_id: int, region: str, fmt: str, rows: str, file_name: str) -> int:
    db = Database(url, pool_size=1)
    async with db.session() as s:
        job_id = (await s.execute(text(
            "INSERT INTO export_job (user_id, scope_code, region_code, warning_id, format, rows, state, rows_done,"
            " rows_total, attempts, worker, created_at, started_at, file_name)"
            " VALUES ((SELECT min(id) FROM app_user), :region, :region, :w, :fmt, :rows, 'running', 0, 0, 1,"
            " :worker, now(), now(), :file) RETURNING id"),
            {"region": region, "w": warning_id, "fmt": fmt, "rows": rows, "worker": WORKER, "file": file_name})
        ).scalar_one()
    await db.dispose()
    return int(job_id)


async def drop_job(url: str, job_id: int) -> None:
    db = Database(url, pool_size=1)
    async with db.session() as s:
        await s.execute(text("DELETE FROM export_job WHERE id = :id AND worker = :worker"),
                        {"id": job_id, "worker": WORKER})
    await db.dispose()


def measured(label: str, run: Callable[[], Any]) -> Any:
    c0, p0, t0 = time.process_time(), postgres_cpu(), time.perf_counter()
    out = run()
    print(f"{label}: wall {time.perf_counter() - t0:.2f} s, own CPU {time.process_time() - c0:.2f} s, "
          f"PostgreSQL CPU {postgres_cpu() - p0:.2f} s (load {load()})", flush=True)
    return out


async def timed(label: str, work: Callable[[], Awaitable[Any]]) -> Any:
    c0, p0, t0 = time.process_time(), postgres_cpu(), time.perf_counter()
    out = await work()
    print(f"  {label}: wall {time.perf_counter() - t0:.2f} s, own CPU {time.process_time() - c0:.2f} s, "
          f"PostgreSQL CPU {postgres_cpu() - p0:.2f} s", flush=True)
    return out


async def parts(url: str, *, warning_id: int, region_code: str, now: datetime) -> None:
    """The reads under the workbook, each alone, in one snapshot as the build does."""
    db = Database(url, pool_size=2)
    try:
        async with db.session() as s:
            region = await s.get(Region, region_code)
        assert region is not None, region_code
        async with scope.snapshot(db) as s:
            scoped = await scope.scoped_warning(s, warning_id=warning_id, region=region)
            _, tree = await timed("report and grid roll-up", lambda: report_and_rollup(
                s, scoped=scoped, now=now, rollup="grid", missing_limit=0, proxy_limit=0))

            async def nodes() -> int:
                return sum(1 for _ in tree.nodes())

            n = await timed("region nodes (分区统计's rows, not written)", nodes)

            async def notices() -> int:
                return sum([len(page) async for page in iter_notices(s, scoped=scoped, now=now)])

            m = await timed("notice rows (叫应明细, not written)", notices)

            async def region_sheet() -> None:
                with tempfile.TemporaryFile() as out, export.book(out, now=now) as wb:
                    sheet = export.Sheet(wb, "分区统计", export.REGION_COLUMNS, title="分区统计", subtitle="",
                                         sample=list(tree.nodes(limit=500)))
                    for node in tree.nodes():
                        sheet.append(node)
                    sheet.close()

            await timed("region sheet (分区统计, built and written)", region_sheet)
            print(f"  {n} region nodes, {m} notice rows")
    finally:
        await db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("BENCH_EXPORT_DATABASE_URL", DEFAULT_URL))
    ap.add_argument("--warning", type=int, default=1)
    ap.add_argument("--region", default="33")
    ap.add_argument("--format", choices=("xlsx", "csv"), default="xlsx")
    ap.add_argument("--rows", default="notices", help="the CSV's rows (the workbook has them all)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--parts", action="store_true", help="also time the reads the workbook is built from")
    ap.add_argument("--keep", metavar="DIR", help="leave the file in DIR (to open it)")
    ap.add_argument("--share", type=float, default=1.0,
                    help="HEAVY_READ_SHARE for the build (1.0: no rests, the build's own time)")
    args = ap.parse_args()
    url = async_database_url(args.database_url)
    print(f"code: {os.path.dirname(warning_service.__file__)}; load {load()}")
    now = datetime.now(UTC)
    directory = args.keep or tempfile.mkdtemp(prefix="export_cpu-")
    try:
        for i in range(args.runs):
            file_name = f"bench-{os.getpid()}-{i}.{args.format}"
            job_id = asyncio.run(add_job(url, warning_id=args.warning, region=args.region, fmt=args.format,
                                         rows=args.rows if args.format == "csv" else "all", file_name=file_name))
            try:
                spec = BuildSpec(job_id=job_id, database_url=url, directory=directory, file_name=file_name, now=now,
                                 heavy_read_share=args.share)
                # As the worker's pool child runs it: the collector paused for the build (heap.run_paused).
                r = measured(f"export {args.format} run {i + 1}",
                             lambda spec=spec: heap.run_paused(build_in_child, spec))
                print(f"  {r.rows} rows, {r.size / 1e6:.1f} MB")
            finally:
                asyncio.run(drop_job(url, job_id))
                if not args.keep:
                    os.unlink(os.path.join(directory, file_name))
        if args.parts:
            asyncio.run(parts(url, warning_id=args.warning, region_code=args.region, now=now))
    finally:
        if not args.keep:
            os.rmdir(directory)


if __name__ == "__main__":
    main()
