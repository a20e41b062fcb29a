"""Acknowledgments (已叫应) — exactly one per notice per round — and 响应反馈 feedback."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from warning_service.db import UTCDateTime


class AckPath(StrEnum):
    link = "link"
    sms_reply = "sms_reply"
    voice_key = "voice_key"
    proxy = "proxy"


class Acknowledgment(SQLModel, table=True):
    __tablename__ = "acknowledgment"
    # The database, not luck, makes concurrent answers through any mix of paths count once.
    __table_args__ = (UniqueConstraint("notice_id", "round", name="uq_ack_notice_round"),)

    id: int | None = Field(default=None, primary_key=True)
    notice_id: int = Field(foreign_key="notice.id")
    round: int = 1
    warning_id: int = Field(foreign_key="early_warning.id", index=True)
    person_id: int = Field(foreign_key="person.id")
    path: str = Field(max_length=12)
    acknowledged_at: datetime = Field(sa_type=UTCDateTime)
    late: bool = False
    raw_input: str | None = Field(default=None, max_length=500)
    source: str | None = Field(default=None, max_length=100)  # IP address or phone number
    proxy_method: str | None = Field(default=None, max_length=20)  # phone | visit | loudspeaker | other
    note: str | None = Field(default=None, max_length=1000)
    actor_user_id: int | None = Field(default=None, foreign_key="app_user.id")


class Feedback(SQLModel, table=True):
    """响应反馈: at post, villages affected, people evacuated — may be amended after the answer."""

    __tablename__ = "notice_feedback"

    id: int | None = Field(default=None, primary_key=True)
    notice_id: int = Field(foreign_key="notice.id", unique=True)
    at_post: bool | None = None
    villages_affected: int | None = None
    people_evacuated: int | None = None
    note: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class InboundEvent(SQLModel, table=True):
    """A signed Twilio callback already acted on (MessageSid of a reply, CallSid/step of a key press).

    Twilio's signature proves who sent a request, not when: a captured reply stays validly signed forever.
    Recording each sid once, under a primary key, makes a replay a no-op instead of an answer to whatever
    warning is open at the time of the replay.
    """

    __tablename__ = "inbound_event"

    sid: str = Field(primary_key=True, max_length=80)
    kind: str = Field(max_length=12)  # sms_reply | voice_key
    received_at: datetime = Field(sa_type=UTCDateTime)
