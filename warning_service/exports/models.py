"""A large export built in the background: who asked, for what, how far it got, and where the file is."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, Integer
from sqlmodel import Field, SQLModel

from warning_service.db import UTCDateTime


class ExportState(StrEnum):
    queued = "queued"    # 排队中
    running = "running"  # 生成中
    done = "done"        # 已完成, file ready until expires_at
    failed = "failed"    # 失败 (error says why)
    expired = "expired"  # 已过期: the file was removed


EXPORT_STATE_ZH = {"queued": "排队中", "running": "生成中", "done": "已完成", "failed": "失败", "expired": "已过期"}


class ExportFormat(StrEnum):
    xlsx = "xlsx"
    csv = "csv"


class ExportJob(SQLModel, table=True):
    __tablename__ = "export_job"
    __table_args__ = (
        # The claim: the oldest queued job, or a running one whose worker stopped renewing its lease.
        Index("ix_export_job_state_id", "state", "id"),
        Index("ix_export_job_user_created", "user_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("app_user.id"), nullable=False))
    # The requester's scope when asking, and the region the export is narrowed to (inside that scope).
    scope_code: str = Field(max_length=20)
    region_code: str = Field(max_length=20)
    warning_id: int = Field(sa_column=Column(Integer, ForeignKey("early_warning.id"), nullable=False))
    format: str = Field(max_length=8)
    rows: str = Field(max_length=16)  # the CSV's rows (notices, missing, …); "all" for the workbook
    state: str = Field(default=ExportState.queued, max_length=12)
    rows_done: int = 0
    rows_total: int = 0
    file_name: str | None = Field(default=None, max_length=200)  # inside Settings.export_dir
    file_size: int | None = None
    attempts: int = 0
    worker: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
