"""应急广播: the loudspeaker terminals of each village, and what each one reported playing.

A terminal (大喇叭 / 应急广播终端) belongs to a village (or a grid of it) and is known to the county's broadcast
platform by `platform_id`. The fan-out queues one outbox row per village; the platform plays it on the
village's terminals and reports each terminal's play (started / finished / failed, how many times) to the
receipt webhook. Each report is kept once by its own id (`broadcast_receipt`), and folded into one row per
message and terminal (`broadcast_play`) that only moves forward.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from pydantic import Field as PField
from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from warning_service.db import UTCDateTime


class PlayStatus(StrEnum):
    started = "started"
    finished = "finished"
    failed = "failed"


# A later report never undoes an earlier one: a late "started" does not reopen a finished play.
PLAY_RANK = {"started": 1, "finished": 2, "failed": 2}


class Terminal(SQLModel, table=True):
    __tablename__ = "broadcast_terminal"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=100)
    region_code: str = Field(foreign_key="region.code", max_length=32, index=True)
    # The village and town it stands in: the fan-out addresses villages, the page groups by town.
    village_code: str = Field(max_length=32, index=True)
    town_code: str | None = Field(default=None, max_length=32, index=True)
    platform_id: str = Field(max_length=64, unique=True)
    online: bool = True
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    note: str | None = Field(default=None, max_length=500)
    active: bool = True
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class BroadcastPlay(SQLModel, table=True):
    """One message (outbox row, one village) on one terminal: the furthest state the platform reported."""

    __tablename__ = "broadcast_play"
    __table_args__ = (
        UniqueConstraint("outbox_id", "terminal_ref", name="uq_broadcast_play_outbox_terminal"),
        Index("ix_broadcast_play_warning", "warning_id", "village_code"),
    )

    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(foreign_key="outbox.id")
    warning_id: int
    village_code: str = Field(max_length=32)
    terminal_ref: str = Field(max_length=64)  # the platform's terminal id
    status: str = Field(max_length=12)  # a PlayStatus
    repeats: int = 0  # plays completed, as the platform counted them
    error_code: str | None = Field(default=None, max_length=64)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class BroadcastReceipt(SQLModel, table=True):
    """Every report the platform pushed, once: a report pushed again (same id) is ignored."""

    __tablename__ = "broadcast_receipt"

    id: int | None = Field(default=None, primary_key=True)
    receipt_id: str = Field(max_length=120, unique=True)
    outbox_id: int | None = Field(default=None, index=True)
    terminal_ref: str = Field(max_length=64)
    event: str = Field(max_length=12)
    repeats: int | None = None
    error_code: str | None = Field(default=None, max_length=64)
    reported_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    received_at: datetime = Field(sa_type=UTCDateTime)


class TerminalIn(BaseModel):
    """A terminal as the API takes it."""

    code: str = PField(min_length=1, max_length=40)
    name: str = PField(min_length=1, max_length=100)
    region_code: str = PField(min_length=2, max_length=32)
    platform_id: str = PField(min_length=1, max_length=64)
    online: bool = True
    note: str | None = PField(None, max_length=500)


class TerminalOut(BaseModel):
    id: int
    code: str
    name: str
    region_code: str
    village_code: str
    town_code: str | None
    village_name: str
    town_name: str
    platform_id: str
    online: bool
    last_seen_at: datetime | None
    note: str | None
    active: bool


class TerminalPage(BaseModel):
    total: int
    online: int
    offline: int
    items: list[TerminalOut]


class TerminalImportOut(BaseModel):
    rows: int
    inserted: int
    updated: int


class Receipt(BaseModel):
    """One terminal's report, in our words (service.py maps the platform's field names onto these)."""

    id: str = PField(min_length=1, max_length=120)
    task: str = PField(min_length=1, max_length=120)  # our task id: the outbox row's idempotency key
    terminal: str = PField(min_length=1, max_length=64)
    event: PlayStatus
    repeats: int | None = PField(None, ge=0, le=100)
    at: datetime | None = None
    error: str | None = PField(None, max_length=64)


class TerminalPlay(BaseModel):
    """One terminal of a village for one warning: what it did, or why we do not know."""

    code: str | None
    name: str
    platform_id: str
    online: bool | None
    state: str  # finished / started / failed / no_receipt / not_sent / queued
    state_zh: str
    repeats: int
    error: str | None
    error_zh: str


class VillagePlayback(BaseModel):
    village_code: str
    village_name: str
    town_name: str
    message_status: str  # the outbox row's status (queued / sending / sent / delivered / failed …)
    played: int
    terminals: list[TerminalPlay]
    not_played: bool  # some terminal did not (yet) finish: someone must go and tell the village


class Playback(BaseModel):
    warning_id: int
    villages: int
    villages_not_played: int
    terminals: int
    terminals_played: int
    items: list[VillagePlayback]
