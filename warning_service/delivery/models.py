"""The outbox of messages to send, and every delivery attempt."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from warning_service.db import UTCDateTime


class OutboxStatus(StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    delivered = "delivered"
    undelivered = "undelivered"
    failed = "failed"
    cancelled = "cancelled"


class MessageKind(StrEnum):
    alert = "alert"            # the warning itself, to someone it newly reaches
    update = "update"          # a new revision, to someone already reached
    cancel = "cancel"          # 解除
    recall = "recall"          # a primary notice called again
    deputy = "deputy"          # the B post called for a silent A post
    escalation = "escalation"  # the level above told about silence below
    evacuation = "evacuation"  # a 转移任务 or a special person/place, to whoever must act (evacuation/)
    evac_release = "evac_release"  # 解除转移: people of an area may go home (evacuation/)
    evac_shelter = "evac_shelter"  # a shelter's manager: households are coming, the page to record them (evacuation/)
    duty_room = "duty_room"    # the duty room on shift, told that a chain ran out
    duty_watch = "duty_watch"  # the duty room, told at the first missed deadline
    attendance = "attendance"  # 到岗确认 demanded by an emergency response


# Kinds that must still go after their warning ended: the lift itself, and the release of evacuees.
AFTER_END_KINDS: tuple[str, ...] = (MessageKind.cancel, MessageKind.evac_release)


# Statuses only move forward; a receipt that would move one backwards is ignored.
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3,
               "cancelled": 3}


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
    # An escalation message covering several silent people (notice.EscalationDigest); `notice_id` is one of
    # its notices. It is no longer needed only when all of them are settled (the dispatcher checks).
    digest_id: int | None = Field(default=None)
    revision: int = 1  # which CAP message's content this carries
    kind: str = Field(max_length=12)  # a MessageKind
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
    # The dispatch worker holding the row while it is 'sending' (see DispatchWorker).
    claimed_by: str | None = Field(default=None, max_length=48)


class DispatchWorker(SQLModel, table=True):
    """A running dispatcher: it renews `heartbeat_at` every second; one that stops is known gone within
    seconds, and the rows it held ('sending', claimed_by = its id) go back to the queue."""

    __tablename__ = "dispatch_worker"

    id: str = Field(primary_key=True, max_length=48)
    host: str = Field(max_length=64)
    pid: int
    started_at: datetime = Field(sa_type=UTCDateTime)
    heartbeat_at: datetime = Field(sa_type=UTCDateTime)


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
