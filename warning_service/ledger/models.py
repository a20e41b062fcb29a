"""The append-only, hash-chained ledger of every decision (有叫有应有记录)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from warning_service.db import UTCDateTime


class LedgerEntry(SQLModel, table=True):
    __tablename__ = "ledger"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    actor: str = Field(max_length=100)  # "user:duty1", "system:dispatcher", "person:+8613…"
    action: str = Field(max_length=40, index=True)
    subject_type: str = Field(max_length=30)
    subject_id: str = Field(max_length=80, index=True)
    details: dict[str, Any] = Field(sa_type=JSON)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


class LedgerPending(SQLModel, table=True):
    """Decisions recorded in their own transaction, waiting for the sealer to chain them into the ledger.

    Appending here takes no lock, so acknowledgments and dispatch never queue behind one another; the
    sealer moves rows into `ledger` in order, a few seconds later, in the same transaction that deletes
    them here.
    """

    __tablename__ = "ledger_pending"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=40)
    subject_type: str = Field(max_length=30)
    subject_id: str = Field(max_length=80)
    details: dict[str, Any] = Field(sa_type=JSON)


class LedgerHead(SQLModel, table=True):
    """The sealed end of the chain (one row), signed with the ledger key.

    The hash chain alone cannot show that its newest entries were cut off: what is left still links.
    The sealer moves this checkpoint forward in the same transaction as the entries it adds, so verify
    can tell a ledger that ends where it should from one that was truncated or extended by hand.
    """

    __tablename__ = "ledger_head"

    id: int = Field(default=1, primary_key=True)
    entry_id: int  # id of the newest sealed entry (= how many entries there are)
    hash: str = Field(max_length=64)
    mac: str = Field(max_length=64)
