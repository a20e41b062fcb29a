"""Warnings (预警) and their CAP message history."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PField
from sqlalchemy import JSON, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from warning_service import labels
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
    storm_surge = "storm_surge"
    sea_wave = "sea_wave"
    waterlogging = "waterlogging"
    severe_convection = "severe_convection"
    freezing = "freezing"


HAZARD_ZH = labels.HAZARD
# Other names the same hazards go by in received CAP messages and in some provinces' settings.
HAZARD_ALIASES = {"森林草原火险": "forest_fire", "森林（草原）火险": "forest_fire", "森林(草原)火险": "forest_fire",
                  "内涝": "waterlogging", "强对流天气": "severe_convection", "低温雨雪冰冻灾害": "freezing"}


class Level(StrEnum):
    blue = "blue"
    yellow = "yellow"
    orange = "orange"
    red = "red"


LEVEL_RANK = {"blue": 1, "yellow": 2, "orange": 3, "red": 4}
LEVEL_ZH = labels.WARNING_LEVEL
LEVEL_COLOUR = {"blue": "#1565c0", "yellow": "#f9a825", "orange": "#ef6c00", "red": "#c62828"}


class WarningStatus(StrEnum):
    actual = "actual"
    exercise = "exercise"
    test = "test"


class WarningState(StrEnum):
    # 审核签发: held for a leader's approval, nothing sent yet (its policy has `sign_off`).
    pending = "pending"
    # Refused by the leader: never sent, kept for the record.
    rejected = "rejected"
    active = "active"
    lifted = "lifted"
    expired = "expired"


# States of a warning that never reached anyone: no deadlines run, no figures count.
UNSENT_STATES = (WarningState.pending.value, WarningState.rejected.value)


class MsgType(StrEnum):
    alert = "alert"
    update = "update"
    cancel = "cancel"


ACTION_ZH = labels.MSG_TYPE


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
    # Why (升级/降级/延长…): recorded in the ledger with the change.
    reason: str | None = PField(default=None, max_length=500)

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("timestamps need a timezone, e.g. 2026-07-01T08:00:00+08:00")
        return v


class WarningLift(BaseModel):
    """解除: the reason is required (in `reason`, or `description` as older clients send it)."""

    # Why it is lifted (e.g. 降雨已减弱): every lift message says it, and the ledger records it.
    reason: str | None = PField(default=None, max_length=500)
    description: str | None = PField(default=None, max_length=4000)


class IssueResponse(BaseModel):
    id: int
    identifier: str
    recipient_count: int  # 0 while the warning waits for sign-off: nobody has been reached
    revision: int = 1
    state: str = "active"  # "pending" when the policy holds it for a leader's approval (审核签发)


class WarningReject(BaseModel):
    """退回: why the leader refuses to sign the warning off (told to the submitter, kept in the ledger)."""

    reason: str = PField(max_length=500)

    @field_validator("reason")
    @classmethod
    def _said(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a rejection needs its reason (退回须填写原因)")
        return v.strip()


class WarningSignoff(SQLModel, table=True):
    """审核签发 of one warning: who submitted it, and which leader approved or rejected it, when and why.

    Names are kept as they were (usernames), so the record still reads right if an account is renamed."""

    __tablename__ = "warning_signoff"

    warning_id: int = Field(foreign_key="early_warning.id", primary_key=True)
    submitted_by: int = Field(foreign_key="app_user.id")
    submitter: str = Field(max_length=64)
    submitted_at: datetime = Field(sa_type=UTCDateTime)
    decision: str | None = Field(default=None, max_length=10)  # approved | rejected
    decided_by: int | None = Field(default=None, foreign_key="app_user.id")
    decider: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reason: str | None = Field(default=None, max_length=500)

    @property
    def cap_note(self) -> str:
        """The CAP `note`: 拟稿 (the duty officer who drafted and submitted) and 签发 (the leader who signed)."""
        return f"拟稿:{self.submitter};签发:{self.decider}"


class IssueRequest(SQLModel, table=True):
    """An `Idempotency-Key` a user issued with: the same key again answers with the same warning."""

    __tablename__ = "issue_request"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_issue_request_user_key"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id")
    key: str = Field(max_length=100)
    # The same key with a different body is a client bug, refused rather than answered with another warning.
    request_hash: str = Field(max_length=64)
    warning_id: int | None = Field(default=None, foreign_key="early_warning.id")
    recipient_count: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime)
