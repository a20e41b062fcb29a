"""Warnings (预警) and their CAP message history."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PField
from sqlalchemy import JSON, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from warning_service.db import UTCDateTime


class Hazard(StrEnum):
    typhoon = "typhoon"
    rainstorm = "rainstorm"
    flood = "flood"
    mountain_torrent = "mountain_torrent"
    geological = "geological"
    gale = "gale"
    heat = "heat"
    cold_wave = "cold_wave"
    blizzard = "blizzard"
    lightning = "lightning"
    hail = "hail"
    fog = "fog"
    haze = "haze"
    drought = "drought"
    frost = "frost"
    road_ice = "road_ice"
    sandstorm = "sandstorm"
    forest_fire = "forest_fire"


HAZARD_ZH = {
    "typhoon": "台风", "rainstorm": "暴雨", "flood": "洪水", "mountain_torrent": "山洪",
    "geological": "地质灾害", "gale": "大风", "heat": "高温", "cold_wave": "寒潮", "blizzard": "暴雪",
    "lightning": "雷电", "hail": "冰雹", "fog": "大雾", "haze": "霾", "drought": "干旱", "frost": "霜冻",
    "road_ice": "道路结冰", "sandstorm": "沙尘暴", "forest_fire": "森林火险",
}


class Level(StrEnum):
    blue = "blue"
    yellow = "yellow"
    orange = "orange"
    red = "red"


LEVEL_RANK = {"blue": 1, "yellow": 2, "orange": 3, "red": 4}
LEVEL_ZH = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
LEVEL_COLOUR = {"blue": "#1565c0", "yellow": "#f9a825", "orange": "#ef6c00", "red": "#c62828"}


class WarningStatus(StrEnum):
    actual = "actual"
    exercise = "exercise"
    test = "test"


class WarningState(StrEnum):
    active = "active"
    lifted = "lifted"
    expired = "expired"


class MsgType(StrEnum):
    alert = "alert"
    update = "update"
    cancel = "cancel"


ACTION_ZH = {"alert": "发布", "update": "更新", "cancel": "解除"}


class EarlyWarning(SQLModel, table=True):
    __tablename__ = "early_warning"
    __table_args__ = (Index("ix_early_warning_state_expires", "state", "expires_at"),)

    id: int | None = Field(default=None, primary_key=True)
    identifier: str = Field(max_length=80, unique=True)
    sender: str = Field(max_length=200)  # issuing unit, e.g. 温岭市防汛防台抗旱指挥部
    sender_code: str = Field(max_length=14)  # 6-digit division + agency + sub-code + ext
    hazard: str = Field(max_length=32, index=True)
    level: str = Field(max_length=8, index=True)
    status: str = Field(max_length=10, index=True)
    state: str = Field(max_length=10, default="active")
    title: str = Field(max_length=300)
    description: str
    instruction: str
    issued_at: datetime = Field(sa_type=UTCDateTime, index=True)
    effective_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    targets: list[str] = Field(sa_type=JSON)
    area_desc: str
    policy: dict[str, Any] = Field(sa_type=JSON)  # the policy in force, snapshotted
    revision: int = 1
    # Bumped by an upgrade: every notice must be acknowledged again in the new round.
    ack_round: int = 1
    # Short number people reply with when they have several open warnings ("回复 12 确认").
    reply_code: int
    source: str = Field(max_length=10, default="api")  # api | cap
    created_by: int | None = Field(default=None, foreign_key="app_user.id")
    lifted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class WarningRevision(SQLModel, table=True):
    """One CAP message: the original alert, each update, the cancel. Messages render from these."""

    __tablename__ = "warning_revision"
    __table_args__ = (UniqueConstraint("warning_id", "revision", name="uq_warning_revision"),)

    id: int | None = Field(default=None, primary_key=True)
    warning_id: int = Field(foreign_key="early_warning.id", index=True)
    revision: int
    msg_type: str = Field(max_length=8)
    identifier: str = Field(max_length=80, unique=True)
    references: str | None = None
    sent_at: datetime = Field(sa_type=UTCDateTime)
    level: str = Field(max_length=8)
    title: str = Field(max_length=300)
    description: str
    instruction: str
    targets: list[str] = Field(sa_type=JSON)
    area_desc: str
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    actor_user_id: int | None = Field(default=None, foreign_key="app_user.id")


class WarningTarget(SQLModel, table=True):
    """The regions a warning targets, so scope filters are joins rather than JSON scans."""

    __tablename__ = "warning_target"

    warning_id: int = Field(foreign_key="early_warning.id", primary_key=True)
    region_code: str = Field(foreign_key="region.code", primary_key=True, max_length=32, index=True)


# --- API shapes -------------------------------------------------------------------------------------------


class WarningIssue(BaseModel):
    """What an API caller may say about a warning. The issuing unit, its sender code and the identifier are
    derived from the caller's scope, never taken from the request: anyone could otherwise publish under
    another county's name (the CAP feed shows the sender to every downstream platform)."""

    model_config = ConfigDict(extra="forbid")

    hazard: Hazard
    level: Level
    status: WarningStatus = WarningStatus.actual
    title: str | None = PField(default=None, max_length=300)
    description: str = PField(min_length=1, max_length=4000)
    instruction: str | None = PField(default=None, max_length=4000)
    effective_at: datetime | None = None
    expires_at: datetime | None = None
    targets: list[str] = PField(min_length=1, max_length=5000)

    @field_validator("effective_at", "expires_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("timestamps need a timezone, e.g. 2026-07-01T08:00:00+08:00")
        return v


class WarningCreate(WarningIssue):
    """A warning as the service issues it: the CAP relay (for trusted upstream senders) keeps the original
    issuer's name, identifier and sender code."""

    sender: str | None = PField(default=None, max_length=200)
    identifier: str | None = PField(default=None, max_length=80)
    sender_code: str | None = PField(default=None, pattern=r"^\d{14}$")


class WarningUpdate(BaseModel):
    level: Level | None = None
    title: str | None = PField(default=None, max_length=300)
    description: str | None = PField(default=None, min_length=1, max_length=4000)
    instruction: str | None = PField(default=None, max_length=4000)
    expires_at: datetime | None = None
    targets: list[str] | None = PField(default=None, min_length=1, max_length=5000)

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("timestamps need a timezone, e.g. 2026-07-01T08:00:00+08:00")
        return v


class WarningLift(BaseModel):
    description: str | None = PField(default=None, max_length=4000)


class IssueResponse(BaseModel):
    id: int
    identifier: str
    recipient_count: int
    revision: int = 1
