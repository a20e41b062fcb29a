"""Notices (叫应 records), the outbox of messages to send, and every delivery attempt."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, Integer, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from warning_service import labels
from warning_service.db import UTCDateTime


class NoticeState(StrEnum):
    pending = "pending"            # 待叫应
    delivered = "delivered"        # 已送达
    acknowledged = "acknowledged"  # 已叫应
    timed_out = "timed_out"        # 超时未叫应
    closed = "closed"              # warning lifted or expired before an answer


NOTICE_STATE_ZH = labels.NOTICE_STATE
OPEN_NOTICE_STATES = ("pending", "delivered")


class NoticeReason(StrEnum):
    primary = "primary"        # reached because the warning targets their region
    deputy = "deputy"          # B post, called because the A post did not answer
    escalation = "escalation"  # level above, told that someone below did not answer


class Notice(SQLModel, table=True):
    __tablename__ = "notice"
    __table_args__ = (
        # One primary notice per person per warning, however targets overlap.
        Index("uq_notice_primary", "warning_id", "person_id", unique=True,
              sqlite_where=text("reason = 'primary'"), postgresql_where=text("reason = 'primary'")),
        UniqueConstraint("escalation_of", "person_id", name="uq_notice_escalation"),
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
    reason: str = Field(max_length=12, default="primary")
    escalation_of: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("notice.id"), nullable=True)
    )
    root_id: int | None = Field(default=None, index=True)  # the primary notice a chain started from
    state: str = Field(max_length=12, default="pending")
    requires_ack: bool = True
    round: int = 1
    deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the escalation sweep must next look at this notice; NULL once nothing more is to be done.
    next_action_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempt_count: int = 0  # re-calls made in this round
    step: str = Field(max_length=16, default="initial")  # initial | recall | deputy | escalated | done
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)


class OutboxStatus(StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    delivered = "delivered"
    undelivered = "undelivered"
    failed = "failed"
    cancelled = "cancelled"


# Statuses only move forward; a receipt that would move one backwards is ignored.
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3,
               "cancelled": 3}
FINAL_STATUSES = ("delivered", "undelivered", "failed", "cancelled")


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        # Every index costs each status change an insertion (status is indexed, so no update is HOT): the
        # queue index (migration 0002) serves claims; this small one finds leases left by a dead worker.
        Index("ix_outbox_lease", "lease_until", sqlite_where=text("status = 'sending'"),
              postgresql_where=text("status = 'sending'")),
        Index("ix_outbox_warning_channel", "warning_id", "channel", "status"),
        # The dispatcher's queue: highest priority first, then oldest. A partial index in exactly the claim's
        # order lets each claim read only the rows it takes, however long the queue (O(batch), not O(queue)).
        Index("ix_outbox_queue", text("priority DESC"), "id",
              sqlite_where=text("status = 'queued'"), postgresql_where=text("status = 'queued'")),
    )

    id: int | None = Field(default=None, primary_key=True)
    warning_id: int = Field(foreign_key="early_warning.id")
    notice_id: int | None = Field(default=None, foreign_key="notice.id", index=True)
    revision: int = 1  # which CAP message's content this carries
    kind: str = Field(max_length=12)  # alert | update | cancel | recall | deputy | escalation
    channel: str = Field(max_length=16)
    address: str = Field(max_length=254)
    region_code: str | None = Field(default=None, max_length=32)
    priority: int = 0  # level rank: red 4 … blue 1; higher goes first
    status: str = Field(max_length=12, default="queued")
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    provider_id: str | None = Field(default=None, max_length=64, index=True)
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = None
    segments: int | None = None
    idempotency_key: str = Field(max_length=120, unique=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class DeliveryAttempt(SQLModel, table=True):
    """One try at handing a message to a provider, and what the provider later reported about it."""

    __tablename__ = "delivery_attempt"

    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(foreign_key="outbox.id", index=True)
    notice_id: int | None = Field(default=None, index=True)
    channel: str = Field(max_length=16)
    adapter: str = Field(max_length=16)
    address: str = Field(max_length=254)
    status: str = Field(max_length=12)
    provider_id: str | None = Field(default=None, max_length=64, index=True)
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = None
    retryable: bool = False
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Delivery receipt (Twilio status callback) for this attempt's provider id; only ever moves forward.
    receipt_status: str | None = Field(default=None, max_length=16)
    receipt_error_code: str | None = Field(default=None, max_length=64)
    receipt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
