"""Matching a batch of ids: `= ANY(array)` on PostgreSQL (one bind, one cached plan), IN elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, String, any_, literal
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.db import dialect_name


def in_ids(session: AsyncSession, column: Any, ids: Sequence[Any]) -> Any:
    """`column IN (ids)`, written so a 1,000-id batch costs one parameter on PostgreSQL, not a thousand."""
    values = list(ids)
    if dialect_name(session) == "postgresql":
        kind = String if values and isinstance(values[0], str) else Integer
        return column == any_(literal(values, ARRAY(kind)))
    return column.in_(values)
