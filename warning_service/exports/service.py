"""Export jobs: asked for by an auditor, claimed by a worker (SKIP LOCKED), built in a child process.

A job belongs to the user who asked: only they see its progress and download its file, and only while the
job's region is still inside their scope. A running job holds a lease its worker renews; a worker that died
stops renewing, and the next claim takes the job again (up to `max_attempts`, then it fails).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service import dialect
from warning_service.errors import Conflict, DomainError, Forbidden, NotFound
from warning_service.exports.models import EXPORT_STATE_ZH, ExportFormat, ExportJob, ExportState
from warning_service.region.models import Region
from warning_service.region.scope import Scope
from warning_service.report.scope import Scoped

OPEN_STATES = (ExportState.queued, ExportState.running)
MAX_OPEN_PER_USER = 3


class TooManyExports(DomainError):
    status_code = 429
    code = "too_many_exports"


class Gone(DomainError):
    status_code = 410
    code = "gone"


async def request_export(session: AsyncSession, *, user_id: int, scope: Region, scoped: Scoped, fmt: ExportFormat,
                         rows: str, now: datetime) -> ExportJob:
    """Queue an export (or return the same one already queued or running for this user)."""
    same = (await session.execute(select(ExportJob).where(
        ExportJob.user_id == user_id, ExportJob.warning_id == scoped.warning.id,
        ExportJob.region_code == scoped.region.code, ExportJob.format == fmt.value, ExportJob.rows == rows,
        ExportJob.state.in_(OPEN_STATES)).order_by(ExportJob.id).limit(1))).scalar_one_or_none()
    if same is not None:
        return same
    open_jobs = (await session.execute(select(ExportJob.id).where(
        ExportJob.user_id == user_id, ExportJob.state.in_(OPEN_STATES)))).all()
    if len(open_jobs) >= MAX_OPEN_PER_USER:
        raise TooManyExports(f"you already have {len(open_jobs)} exports queued or running; wait for one to finish",
                             f"您已有 {len(open_jobs)} 个导出在排队或生成中,请等其完成后再试")
    job = ExportJob(user_id=user_id, scope_code=scope.code, region_code=scoped.region.code,
                    warning_id=scoped.warning.id, format=fmt.value, rows=rows, state=ExportState.queued,
                    created_at=now)
    session.add(job)
    await session.flush()
    return job


async def own_job(session: AsyncSession, *, job_id: int, user_id: int, scope: Region) -> ExportJob:
    """The caller's own job, whose region is still inside the caller's scope.

    Someone else's job is "not found": its existence (and which warnings others export) is not told.
    """
    job = await session.get(ExportJob, job_id)
    if job is None or job.user_id != user_id:
        raise NotFound(f"export {job_id} not found", f"导出任务 {job_id} 不存在", field="job_id")
    region = await session.get(Region, job.region_code)
    if region is None or not Scope(scope.path).covers(region.path):
        raise Forbidden(f"export {job_id} covers {job.region_code}, outside your scope {scope.code}",
                        f"导出任务 {job_id} 的范围 {job.region_code} 不在您的管辖范围 {scope.code} 内",
                        field="job_id")
    return job


async def recent(session: AsyncSession, *, user_id: int, limit: int = 50) -> list[ExportJob]:
    rows = (await session.execute(select(ExportJob).where(ExportJob.user_id == user_id)
                                  .order_by(ExportJob.id.desc()).limit(limit))).scalars().all()
    return list(reversed(rows))


def file_of(job: ExportJob, *, directory: Path) -> Path:
    """The finished file of a job, or why there is none (409 not ready, 410 failed or expired)."""
    if job.state in OPEN_STATES:
        raise Conflict(f"export {job.id} is {job.state}: {job.rows_done} of {job.rows_total} rows",
                       f"导出任务 {job.id} {EXPORT_STATE_ZH[job.state]}:已完成 {job.rows_done}/{job.rows_total} 行",
                       field="job_id")
    if job.state == ExportState.failed:
        raise Gone(f"export {job.id} failed: {job.error}", f"导出任务 {job.id} 失败:{job.error}", field="job_id")
    path = directory / job.file_name if job.file_name else None
    if job.state == ExportState.expired or path is None or not path.is_file():
        raise Gone(f"export {job.id} has expired; request it again", f"导出文件 {job.id} 已过期,请重新导出",
                   field="job_id")
    return path


async def claim(session: AsyncSession, *, now: datetime, worker: str, lease_seconds: int, max_attempts: int
                ) -> ExportJob | None:
    """Take the oldest queued job, or a running one whose lease ran out (its worker died)."""
    while True:
        stmt = select(ExportJob).where(or_(
            ExportJob.state == ExportState.queued,
            and_(ExportJob.state == ExportState.running, ExportJob.lease_until < now))).order_by(ExportJob.id).limit(1)
        job = (await session.execute(dialect.skip_locked(session, stmt))).scalar_one_or_none()
        if job is None:
            return None
        if job.attempts >= max_attempts:
            # Every attempt so far ended with its worker gone (killed, out of memory): stop trying.
            job.state, job.finished_at, job.lease_until = ExportState.failed, now, None
            job.error = f"the export stopped {job.attempts} times without finishing / 导出 {job.attempts} 次均未完成"
            await session.flush()
            continue
        job.state, job.worker, job.attempts = ExportState.running, worker, job.attempts + 1
        job.lease_until, job.started_at = now + timedelta(seconds=lease_seconds), now
        job.rows_done = 0
        ext = job.format
        job.file_name = f"export-{job.id}-{job.attempts}-{secrets.token_hex(8)}.{ext}"
        await session.flush()
        return job


def _mine(job_id: int, worker: str) -> Any:
    return and_(ExportJob.id == job_id, ExportJob.state == ExportState.running, ExportJob.worker == worker)


async def renew(session: AsyncSession, *, job_id: int, worker: str, until: datetime) -> bool:
    """Extend the lease; False when the job is no longer this worker's (taken over, or finished)."""
    res = await session.execute(update(ExportJob).where(_mine(job_id, worker)).values(lease_until=until))
    return res.rowcount == 1


async def record_progress(session: AsyncSession, *, job_id: int, file_name: str, done: int, total: int) -> None:
    """Rows written so far, by the attempt writing `file_name` (a superseded attempt changes nothing)."""
    await session.execute(update(ExportJob).where(
        ExportJob.id == job_id, ExportJob.state == ExportState.running, ExportJob.file_name == file_name
    ).values(rows_done=done, rows_total=max(total, done)))


async def finish(session: AsyncSession, *, job_id: int, worker: str, rows: int, size: int, now: datetime,
                 ttl: timedelta) -> bool:
    res = await session.execute(update(ExportJob).where(_mine(job_id, worker)).values(
        state=ExportState.done, rows_done=rows, file_size=size, finished_at=now, expires_at=now + ttl,
        lease_until=None, error=None))
    return res.rowcount == 1


async def fail(session: AsyncSession, *, job_id: int, worker: str, error: str, now: datetime) -> None:
    await session.execute(update(ExportJob).where(_mine(job_id, worker)).values(
        state=ExportState.failed, error=error[:500], finished_at=now, lease_until=None))


async def release(session: AsyncSession, *, job_id: int, worker: str) -> None:
    """Give a job back to the queue (the worker is stopping); the attempt is not counted against it."""
    await session.execute(update(ExportJob).where(_mine(job_id, worker)).values(
        state=ExportState.queued, lease_until=None, worker=None, attempts=ExportJob.attempts - 1))


async def expired_files(session: AsyncSession, *, now: datetime) -> list[str]:
    """Mark finished jobs past their expiry as expired; returns the file names to delete."""
    rows = (await session.execute(select(ExportJob.id, ExportJob.file_name).where(
        ExportJob.state == ExportState.done, ExportJob.expires_at < now))).all()
    if rows:
        await session.execute(update(ExportJob).where(ExportJob.id.in_([r.id for r in rows]))
                              .values(state=ExportState.expired))
    return [r.file_name for r in rows if r.file_name]


def public(job: ExportJob) -> dict[str, Any]:
    """What the requester sees of a job."""
    ready = job.state == ExportState.done
    return {"id": job.id, "warning_id": job.warning_id, "region_code": job.region_code, "format": job.format,
            "rows": job.rows, "state": job.state, "state_zh": EXPORT_STATE_ZH.get(job.state, job.state),
            "rows_done": job.rows_done, "rows_total": job.rows_total,
            "percent": round(100 * job.rows_done / job.rows_total, 1) if job.rows_total else None,
            "file_size": job.file_size, "error": job.error, "created_at": job.created_at,
            "started_at": job.started_at, "finished_at": job.finished_at, "expires_at": job.expires_at,
            "download_url": f"/api/v1/reports/exports/{job.id}/file" if ready else None}
