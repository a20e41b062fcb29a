"""Worker job: claim queued exports, build each in a child process while renewing its lease, and remove
the files of expired ones."""

from __future__ import annotations

import asyncio
import os
import socket
from concurrent.futures.process import BrokenProcessPool
from datetime import timedelta
from pathlib import Path

from warning_service.exports import service
from warning_service.exports.build import BuildSpec, build_in_child
from warning_service.exports.models import ExportJob
from warning_service.logging import get_logger
from warning_service.runtime import Runtime

log = get_logger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def export_tick(rt: Runtime) -> int:
    """Expire old files, then build up to `export_workers` exports at once; returns how many were built."""
    await remove_expired(rt)
    s = rt.settings
    worker = worker_name()
    claimed: list[ExportJob] = []
    while len(claimed) < s.export_workers and not rt.stopping.is_set():
        async with rt.db.session() as session:
            job = await service.claim(session, now=rt.clock.now(), worker=worker,
                                      lease_seconds=s.export_lease_seconds, max_attempts=s.export_max_attempts)
        if job is None:
            break
        claimed.append(job)
    results = await asyncio.gather(*(run_job(rt, job, worker=worker) for job in claimed))
    return sum(results)


async def run_job(rt: Runtime, job: ExportJob, *, worker: str) -> bool:
    """Build one claimed export in the pool; True when its file is ready."""
    assert job.id is not None and job.file_name and job.started_at
    s = rt.settings
    spec = BuildSpec(job_id=job.id, database_url=rt.db.url, directory=str(s.export_dir), file_name=job.file_name,
                     now=job.started_at, heavy_read_share=s.heavy_read_share)
    log.info("export_started", job_id=job.id, warning_id=job.warning_id, region=job.region_code,
             format=job.format, rows=job.rows, attempt=job.attempts)
    built = rt.export_pool.submit(build_in_child, spec)
    stopping = asyncio.ensure_future(rt.stopping.wait())
    try:
        while True:
            done, _ = await asyncio.wait({built, stopping}, timeout=s.export_lease_seconds / 3,
                                         return_when=asyncio.FIRST_COMPLETED)
            if built in done:
                break
            if stopping in done:
                # Back to the queue: the next worker starts it afresh (this child's file is never used).
                async with rt.db.session() as session:
                    await service.release(session, job_id=job.id, worker=worker)
                log.info("export_released", job_id=job.id)
                return False
            async with rt.db.session() as session:
                mine = await service.renew(session, job_id=job.id, worker=worker,
                                           until=rt.clock.now() + timedelta(seconds=s.export_lease_seconds))
            if not mine:
                log.warning("export_taken_over", job_id=job.id)
                return False
        result = built.result()
    except BrokenProcessPool:
        # The child was killed (out of memory?): the lease runs out and a later claim tries again,
        # up to the attempt limit.
        rt.export_pool.reset()
        log.error("export_child_died", job_id=job.id, attempt=job.attempts)
        return False
    except Exception as exc:  # noqa: BLE001 — the job records why it failed; the worker carries on
        log.exception("export_failed", job_id=job.id)
        async with rt.db.session() as session:
            await service.fail(session, job_id=job.id, worker=worker, error=f"{type(exc).__name__}: {exc}",
                               now=rt.clock.now())
        return False
    finally:
        stopping.cancel()
    async with rt.db.session() as session:
        ok = await service.finish(session, job_id=job.id, worker=worker, rows=result.rows, size=result.size,
                                  now=rt.clock.now(), ttl=timedelta(hours=s.export_ttl_hours))
    log.info("export_done", job_id=job.id, rows=result.rows, bytes=result.size, kept=ok,
             db_seconds=result.db_seconds, rested_seconds=result.rested_seconds)
    return ok


async def remove_expired(rt: Runtime) -> int:
    async with rt.db.session() as session:
        names = await service.expired_files(session, now=rt.clock.now())
    directory = Path(rt.settings.export_dir)
    for name in names:
        await asyncio.to_thread((directory / name).unlink, missing_ok=True)
    if names:
        log.info("exports_expired", files=len(names))
    return len(names)
