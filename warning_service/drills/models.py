"""演练 and 号码核验: a run scheduled for a region, issued once by the worker when due, scored apart.

Both kinds are one table and one engine: when due, the worker issues an ordinary warning (status `exercise`
for a drill, `test` for a number check) and every notice, re-call, answer and report is the engine's own.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PField
from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from warning_service.db import UTCDateTime
from warning_service.early_warning.models import Hazard, Level


class DrillKind(StrEnum):
    exercise = "exercise"          # 演练: a warning as real, status exercise, scored apart
    number_check = "number_check"  # 号码核验: status test, reply required, failures feed roster health


class DrillState(StrEnum):
    scheduled = "scheduled"  # 待执行
    issued = "issued"        # 已发出 (its warning carries the results)
    cancelled = "cancelled"  # 已取消 before it was due
    failed = "failed"        # the warning could not be issued (reason in `error`)


KIND_ZH = {"exercise": "演练", "number_check": "号码核验"}
STATE_ZH = {"scheduled": "待执行", "issued": "已发出", "cancelled": "已取消", "failed": "未能发出"}
DUE_PREDICATE = "state = 'scheduled'"


class Drill(SQLModel, table=True):
    __tablename__ = "drill"
    __table_args__ = (
        # The worker's claim reads only scheduled rows, in due order.
        Index("ix_drill_due", "due_at", sqlite_where=text(DUE_PREDICATE), postgresql_where=text(DUE_PREDICATE)),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    region_code: str = Field(foreign_key="region.code", max_length=32, index=True)
    hazard: str = Field(max_length=32)
    level: str = Field(max_length=8)
    # False = 突击演练: hidden before it is due from everyone below the scope of whoever scheduled it.
    announced: bool = True
    due_at: datetime = Field(sa_type=UTCDateTime)
    # How long recipients have to answer a number check (a drill uses its level's deadline).
    answer_minutes: int = 0
    # An announced drill tells the people it will test beforehand (演练预告, no reply asked) at this time;
    # a 突击 drill and a number check never do.
    notice_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    notice_warning_id: int | None = Field(default=None, foreign_key="early_warning.id")
    description: str = Field(max_length=1000)
    state: str = Field(max_length=12, default=DrillState.scheduled)
    warning_id: int | None = Field(default=None, foreign_key="early_warning.id", index=True)
    # The scheduler's scope: the warning is issued in it, and an unannounced run is shown only within it.
    scope_code: str = Field(max_length=32)
    scope_path: str = Field(max_length=200)
    created_by: str = Field(max_length=100)
    user_id: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(sa_type=UTCDateTime)
    issued_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_by: str | None = Field(default=None, max_length=100)
    error: str | None = Field(default=None, max_length=500)


def _aware(v: datetime | None) -> datetime | None:
    if v is not None and v.tzinfo is None:
        raise ValueError("timestamps need a timezone, e.g. 2026-06-01T09:00:00+08:00")
    return v


class DrillCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: DrillKind = DrillKind.exercise
    region_code: str = PField(min_length=2, max_length=32)
    hazard: Hazard = Hazard.flood
    level: Level = Level.red
    announced: bool = True
    due_at: datetime
    # How long before the drill its people are told (announced drills only; 0 = not told by the system).
    notice_hours: float | None = PField(default=None, ge=0, le=30 * 24)
    answer_minutes: int | None = PField(default=None, ge=5, le=7 * 24 * 60)
    description: str | None = PField(default=None, max_length=1000)

    _due = field_validator("due_at")(classmethod(lambda cls, v: _aware(v)))


class DrillUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Level | None = None
    announced: bool | None = None
    due_at: datetime | None = None
    answer_minutes: int | None = PField(default=None, ge=5, le=7 * 24 * 60)
    description: str | None = PField(default=None, max_length=1000)

    _due = field_validator("due_at")(classmethod(lambda cls, v: _aware(v)))


class DrillResult(BaseModel):
    """The figures of an issued run: those its warning's report counts (primary notices that ask an answer)."""

    required: int = 0
    acknowledged: int = 0
    on_time: int = 0
    rate: float | None = None
    failed: int = 0  # number check: no message reached the number
    silent: int = 0  # number check: reached (or not known to fail) but no answer by the deadline


class DrillPublic(BaseModel):
    id: int
    kind: DrillKind
    kind_zh: str
    region_code: str
    region_name: str
    hazard: str
    level: str
    announced: bool
    due_at: datetime
    answer_minutes: int
    notice_at: datetime | None
    notice_warning_id: int | None
    description: str
    state: DrillState
    state_zh: str
    warning_id: int | None
    created_by: str
    created_at: datetime
    issued_at: datetime | None
    cancelled_at: datetime | None
    error: str | None
    result: DrillResult | None = None


class CheckFailure(BaseModel):
    """One number that failed a number check."""

    person_id: int
    name: str
    role: str
    role_zh: str
    region_code: str
    region_name: str
    phone: str | None
    reason: str      # failed | silent
    reason_zh: str   # 未送达 | 未回复
    detail: str      # the provider's error, or the deadline missed
    checked_at: datetime
