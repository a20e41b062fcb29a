"""The notice: one person asked to answer one warning in one round, with its place in the chase.

Its states, reasons and steps are enums, and the sets the rest of the code asks about are named here once:
which states can still be answered, which are settled, which outbox kinds only exist to chase silence.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, Integer, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from warning_service import labels
from warning_service.db import UTCDateTime
from warning_service.delivery.models import MessageKind


class NoticeState(StrEnum):
    pending = "pending"            # 待叫应
    delivered = "delivered"        # 已送达
    acknowledged = "acknowledged"  # 已叫应
    timed_out = "timed_out"        # 超时未叫应
    closed = "closed"              # warning lifted or expired, or its chain answered, before an answer


class NoticeReason(StrEnum):
    primary = "primary"        # reached because the warning targets their region
    deputy = "deputy"          # B post, called because the A post did not answer
    escalation = "escalation"  # level above, told that someone below did not answer
    evacuation = "evacuation"  # 转移任务: a 包户责任人 told to move the households they keep (evacuation/)
    special = "special"        # a special person's helper or a special place's contact (evacuation/)
    duty_room = "duty_room"    # the duty room on shift, when the chain of responsible persons ran out
    duty_watch = "duty_watch"  # the duty room told at the first missed deadline, while re-calls go on
    attendance = "attendance"  # 到岗确认 demanded by an emergency response (response/)


class NoticeStep(StrEnum):
    initial = "initial"      # waiting for the first answer
    recall = "recall"        # being called again
    deputy = "deputy"        # the deputy was called
    escalated = "escalated"  # the level above was told
    done = "done"            # nothing more to do


NOTICE_STATE_ZH = labels.NOTICE_STATE

# Still waiting for an answer.
OPEN_STATES: tuple[str, ...] = (NoticeState.pending, NoticeState.delivered)
# Can still be answered: a timed-out notice may be answered late; a closed one may not.
ANSWERABLE_STATES: tuple[str, ...] = (*OPEN_STATES, NoticeState.timed_out)
# Nothing more will happen to it in this round.
SETTLED_STATES: tuple[str, ...] = (NoticeState.acknowledged, NoticeState.timed_out, NoticeState.closed)
# Messages that only exist to chase silence; an answer (or a new round) makes them pointless.
CHASE_KINDS: tuple[str, ...] = (MessageKind.recall, MessageKind.deputy, MessageKind.escalation,
                                MessageKind.duty_room, MessageKind.duty_watch, MessageKind.attendance)
# Notices that belong to a warning's chains of 叫应 (and end with its round); a 到岗 demand belongs to its
# response and outlives an upgrade of the warning it rode in on.
ROUND_REASONS: tuple[str, ...] = (NoticeReason.deputy, NoticeReason.escalation, NoticeReason.duty_room,
                                  NoticeReason.duty_watch)
# Reasons that start a chain of their own (re-call, deputy, level above), as a primary notice does: someone was
# asked to act, not told about someone else's silence.
ROOT_REASONS: tuple[str, ...] = (NoticeReason.primary, NoticeReason.evacuation, NoticeReason.special)


PRIMARY_PREDICATE = "reason = 'primary'"
DUTY_WATCH_PREDICATE = "reason = 'duty_watch'"
EVACUATION_PREDICATE = "reason = 'evacuation'"


class EscalationDigest(SQLModel, table=True):
    """One escalation message: everyone newly silent below one recipient, found by one sweep.

    The escalation notices it covers (one per silent notice, for the audit trail) point at it; the
    message, its re-calls and the answer go by the digest, so a town head over 27 silent grids gets one
    SMS, not 27. `reply_code` is unique among the recipient's open notices and digests.
    """

    __tablename__ = "escalation_digest"

    id: int | None = Field(default=None, primary_key=True)
    warning_id: int = Field(foreign_key="early_warning.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    round: int = 1
    reply_code: int
    created_at: datetime = Field(sa_type=UTCDateTime)


class Notice(SQLModel, table=True):
    __tablename__ = "notice"
    __table_args__ = (
        # One primary notice per person per warning, however targets overlap.
        Index("uq_notice_primary", "warning_id", "person_id", unique=True,
              sqlite_where=text(PRIMARY_PREDICATE), postgresql_where=text(PRIMARY_PREDICATE)),
        UniqueConstraint("escalation_of", "person_id", name="uq_notice_escalation"),
        # The duty room is told once per warning (per person on shift), however many notices fall silent.
        Index("uq_notice_duty_watch", "warning_id", "person_id", unique=True,
              sqlite_where=text(DUTY_WATCH_PREDICATE), postgresql_where=text(DUTY_WATCH_PREDICATE)),
        # A 包户责任人's one 转移 notice of a warning, found by the keeper (evacuation/). Not unique: warnings
        # opened before evac2 have a notice per household; the one writer (warning row locked) keeps it to one.
        Index("ix_notice_evacuation", "warning_id", "person_id",
              sqlite_where=text(EVACUATION_PREDICATE), postgresql_where=text(EVACUATION_PREDICATE)),
        Index("ix_notice_due", "next_action_at",
              sqlite_where=text("next_action_at IS NOT NULL"), postgresql_where=text("next_action_at IS NOT NULL")),
        Index("ix_notice_warning_state", "warning_id", "state"),
        Index("ix_notice_person_state", "person_id", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    warning_id: int = Field(foreign_key="early_warning.id")
    person_id: int = Field(foreign_key="person.id")
    role: str = Field(max_length=40)
    region_code: str = Field(foreign_key="region.code", max_length=32, index=True)
    reason: str = Field(max_length=12, default=NoticeReason.primary)
    escalation_of: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("notice.id"), nullable=True)
    )
    root_id: int | None = Field(default=None, index=True)  # the primary notice a chain started from
    state: str = Field(max_length=12, default=NoticeState.pending)
    requires_ack: bool = True
    round: int = 1
    deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the escalation sweep must next look at this notice; NULL once nothing more is to be done.
    next_action_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempt_count: int = 0  # re-calls made in this round
    step: str = Field(max_length=16, default=NoticeStep.initial)
    # Escalation notices opened for one recipient in one sweep share a digest: one message lists them all.
    digest_id: int | None = Field(default=None, foreign_key="escalation_digest.id", index=True)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
