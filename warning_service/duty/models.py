"""The duty roster (值班表): who sits in each region's duty room, shift by shift.

A shift is one region's duty room for a span of time: one 带班领导 and up to two 值班员 ("1+2" 值班值守),
each a person of the roster so that the notice engine can call them. A free entry (a name and a phone not on
the roster) becomes a person with the role duty_leader / duty_officer in the shift's region when saved.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from pydantic import Field as PField
from sqlalchemy import Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from warning_service.db import UTCDateTime


class Seat(StrEnum):
    leader = "leader"    # 带班领导
    officer = "officer"  # 值班员


SEAT_ROLE = {Seat.leader: "duty_leader", Seat.officer: "duty_officer"}
MAX_OFFICERS = 2


class DutyShift(SQLModel, table=True):
    __tablename__ = "duty_shift"
    __table_args__ = (Index("ix_duty_shift_region_time", "region_code", "starts_at", "ends_at"),)

    id: int | None = Field(default=None, primary_key=True)
    region_code: str = Field(foreign_key="region.code", max_length=32)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    room_phone: str | None = Field(default=None, max_length=20)  # the duty room's fixed line, if any
    note: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class DutyMember(SQLModel, table=True):
    __tablename__ = "duty_member"
    __table_args__ = (UniqueConstraint("shift_id", "person_id", name="uq_duty_member_person"),)

    id: int | None = Field(default=None, primary_key=True)
    shift_id: int = Field(sa_column=Column(Integer, ForeignKey("duty_shift.id", ondelete="CASCADE"),
                                           nullable=False, index=True))
    seat: str = Field(max_length=12)
    position: int = 0  # order within the seat: 值班员 1, 2
    person_id: int = Field(foreign_key="person.id", index=True)


class MemberIn(BaseModel):
    """One seat of a shift: a person of the roster by id, or a free entry by name and phone."""

    person_id: int | None = None
    name: str | None = PField(default=None, max_length=100)
    phone: str | None = PField(default=None, max_length=32)


class ShiftIn(BaseModel):
    region_code: str = PField(min_length=1, max_length=32)
    starts_at: datetime
    ends_at: datetime
    leader: MemberIn
    officers: list[MemberIn] = PField(default_factory=list, max_length=MAX_OFFICERS)
    room_phone: str | None = None
    note: str | None = PField(default=None, max_length=200)


class MemberPublic(BaseModel):
    seat: str
    seat_zh: str
    person_id: int
    name: str
    phone: str | None


class ShiftPublic(BaseModel):
    id: int
    region_code: str
    region_name: str
    starts_at: datetime
    ends_at: datetime
    room_phone: str | None
    note: str | None
    leader: MemberPublic | None
    officers: list[MemberPublic]
