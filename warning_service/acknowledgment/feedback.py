"""响应反馈: at post, villages affected, people evacuated — given after the answer, amendable later."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pydantic import Field as PField
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.acknowledgment.models import Acknowledgment, Feedback
from warning_service.dialect import upsert
from warning_service.errors import Conflict, NotFound
from warning_service.ledger import service as ledger
from warning_service.logging import get_logger
from warning_service.notice.answer import load_notice

log = get_logger(__name__)


class FeedbackIn(BaseModel):
    """响应反馈: at post, villages affected, people evacuated, note. Omitted fields keep their value."""

    at_post: bool | None = None
    villages_affected: int | None = PField(default=None, ge=0, le=100_000)
    people_evacuated: int | None = PField(default=None, ge=0, le=10_000_000)
    note: str | None = PField(default=None, max_length=2000)


FEEDBACK_FIELDS = ("at_post", "villages_affected", "people_evacuated", "note")


def feedback_dict(f: Feedback | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {"at_post": f.at_post, "villages_affected": f.villages_affected,
            "people_evacuated": f.people_evacuated, "note": f.note,
            "created_at": f.created_at.isoformat(), "updated_at": f.updated_at.isoformat()}


async def get_feedback(session: AsyncSession, notice_id: int) -> Feedback | None:
    stmt = select(Feedback).where(Feedback.notice_id == notice_id).execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one_or_none()


async def record_feedback(session: AsyncSession, *, notice_id: int, data: FeedbackIn, now: datetime,
                          actor: str, source: str | None = None) -> Feedback:
    """Add or amend the notice's feedback (upsert); only after the notice was acknowledged in some round."""
    answered = (await session.execute(select(Acknowledgment.id).where(Acknowledgment.notice_id == notice_id)
                                      .limit(1))).first()
    if answered is None:
        if await load_notice(session, notice_id) is None:
            raise NotFound(f"notice {notice_id} not found", f"通知 {notice_id} 不存在", field="notice_id")
        raise Conflict("acknowledge the warning before giving feedback", "请先确认收到预警,再填写响应反馈",
                       field="notice_id")
    fields = {k: v for k, v in data.model_dump(exclude_unset=True).items() if k in FEEDBACK_FIELDS}
    if isinstance(fields.get("note"), str):
        fields["note"] = fields["note"].strip() or None
    stmt = upsert(session, Feedback.__table__, index_elements=["notice_id"],
                  update_columns=[*fields, "updated_at"])
    await session.execute(stmt.values(notice_id=notice_id, created_at=now, updated_at=now, **fields))
    row = await get_feedback(session, notice_id)
    assert row is not None
    await ledger.append(session, at=now, actor=actor, action="feedback.recorded", subject_type="notice",
                        subject_id=notice_id, details={"fields": fields, "source": source})
    log.info("feedback_recorded", notice_id=notice_id, fields=sorted(fields))
    return row
