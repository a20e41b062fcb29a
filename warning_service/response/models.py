"""应急响应: a response per region and hazard at level Ⅳ..Ⅰ, its changes, its warnings and its 到岗 demands.

A response is started, raised or lowered and ended by someone who decided it (指挥长, 分管领导); every
change is a row of `response_change` and an entry of the ledger. Starting or raising it demands 到岗确认
from the roles its level names: each demand is a notice (reason `attendance`) chased by the notice engine
on the response level's own clock, linked here by `response_demand`. A notice belongs to a warning, so a
response is started from the warning that triggered it; its demands ride on that warning's id.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from pydantic import Field as PField
from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from warning_service.db import UTCDateTime


class ResponseLevel(StrEnum):
    IV = "IV"
    III = "III"
    II = "II"
    I = "I"  # noqa: E741 — the level's own name


# Higher is more severe.
RESPONSE_RANK = {ResponseLevel.IV: 1, ResponseLevel.III: 2, ResponseLevel.II: 3, ResponseLevel.I: 4}


class ResponseState(StrEnum):
    active = "active"
    ended = "ended"


class ResponseAction(StrEnum):
    start = "start"
    raise_ = "raise"
    lower = "lower"
    end = "end"


ACTIVE_PREDICATE = "state = 'active'"


class EmergencyResponse(SQLModel, table=True):
    __tablename__ = "emergency_response"
    __table_args__ = (
        # One response in force per region and hazard; a new level is a change of it, not a second one.
        Index("uq_response_active", "region_code", "hazard", unique=True,
              sqlite_where=text(ACTIVE_PREDICATE), postgresql_where=text(ACTIVE_PREDICATE)),
    )

    id: int | None = Field(default=None, primary_key=True)
    region_code: str = Field(foreign_key="region.code", max_length=32, index=True)
    hazard: str = Field(max_length=32)
    level: str = Field(max_length=4)
    state: str = Field(max_length=8, default=ResponseState.active)
    warning_id: int = Field(foreign_key="early_warning.id", index=True)  # the warning that triggered it
    exercise: bool = False  # started from an exercise warning: kept apart in every count
    decided_by: str = Field(max_length=100)
    # The level's policy in force (roles, deadline, chase), snapshotted as warnings snapshot theirs.
    policy: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    started_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class ResponseChange(SQLModel, table=True):
    __tablename__ = "response_change"

    id: int | None = Field(default=None, primary_key=True)
    response_id: int = Field(sa_column=Column(Integer, ForeignKey("emergency_response.id"), nullable=False,
                                              index=True))
    at: datetime = Field(sa_type=UTCDateTime)
    action: str = Field(max_length=8)
    from_level: str | None = Field(default=None, max_length=4)
    to_level: str | None = Field(default=None, max_length=4)
    decided_by: str = Field(max_length=100)
    actor: str = Field(max_length=120)
    reason: str | None = Field(default=None, max_length=500)
    demands: int = 0  # 到岗 demands this change opened


class ResponseWarning(SQLModel, table=True):
    __tablename__ = "response_warning"

    response_id: int = Field(sa_column=Column(Integer, ForeignKey("emergency_response.id"), primary_key=True))
    warning_id: int = Field(sa_column=Column(Integer, ForeignKey("early_warning.id"), primary_key=True,
                                             index=True))
    linked_at: datetime = Field(sa_type=UTCDateTime)


class ResponseDemand(SQLModel, table=True):
    __tablename__ = "response_demand"
    __table_args__ = (UniqueConstraint("response_id", "person_id", name="uq_response_demand_person"),)

    id: int | None = Field(default=None, primary_key=True)
    response_id: int = Field(sa_column=Column(Integer, ForeignKey("emergency_response.id"), nullable=False,
                                              index=True))
    notice_id: int = Field(sa_column=Column(Integer, ForeignKey("notice.id"), nullable=False, unique=True))
    person_id: int = Field(foreign_key="person.id")
    level: str = Field(max_length=4)  # the level that demanded it
    created_at: datetime = Field(sa_type=UTCDateTime)


class ResponseStart(BaseModel):
    region_code: str = PField(min_length=1, max_length=32)
    hazard: str = PField(min_length=1, max_length=32)
    level: ResponseLevel
    warning_id: int
    decided_by: str = PField(min_length=1, max_length=100)
    reason: str | None = PField(default=None, max_length=500)


class ResponseAdjust(BaseModel):
    level: ResponseLevel
    decided_by: str = PField(min_length=1, max_length=100)
    reason: str | None = PField(default=None, max_length=500)


class ResponseEnd(BaseModel):
    decided_by: str = PField(min_length=1, max_length=100)
    reason: str | None = PField(default=None, max_length=500)


class ResponseLink(BaseModel):
    warning_id: int


class ResponsePublic(BaseModel):
    id: int
    region_code: str
    hazard: str
    level: str
    level_zh: str
    state: str
    warning_id: int
    exercise: bool
    decided_by: str
    started_at: datetime
    ended_at: datetime | None
    attendance: dict[str, Any]
