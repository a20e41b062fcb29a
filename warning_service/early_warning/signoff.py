"""审核签发: a warning whose policy has `sign_off` waits, unsent, until a 带班领导 approves or rejects it.

The issue stores it in state `pending` (targets kept, no notices, no messages; see `service.issue_warning`).
Approval runs the issue's own sending half (`service.release`) in the approving transaction, so the count a
leader approves is the count the preview showed and the count that is sent. Rejection sends nothing. Both
are recorded in the ledger with the two names, and the CAP alert's `note` carries them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.actor import Actor
from warning_service.early_warning import queries, service
from warning_service.early_warning.models import EarlyWarning, WarningSignoff, WarningState
from warning_service.errors import Conflict, Forbidden
from warning_service.ledger import service as ledger
from warning_service.logging import get_logger
from warning_service.region.models import Region

log = get_logger(__name__)


@dataclass(frozen=True)
class Pending:
    """One warning of the approvals queue, with who submitted it and when."""

    warning: EarlyWarning
    signoff: WarningSignoff


async def queue(session: AsyncSession, *, actor: Actor, limit: int = 100) -> list[Pending]:
    """Warnings waiting for sign-off that the actor can see, oldest first (the longest wait is the most urgent)."""
    _, rows = await queries.list_warnings(session, actor=actor, state=WarningState.pending.value, limit=limit,
                                          oldest_first=True)
    if not rows:
        return []
    signoffs = {s.warning_id: s for s in (await session.execute(select(WarningSignoff).where(
        WarningSignoff.warning_id.in_([w.id for w in rows])))).scalars()}
    return [Pending(w, signoffs[w.id]) for w in rows if w.id in signoffs]  # type: ignore[index]


async def signoff_of(session: AsyncSession, *, warning_id: int) -> WarningSignoff | None:
    return await session.get(WarningSignoff, warning_id)


async def _for_decision(session: AsyncSession, *, warning_id: int, actor: Actor
                        ) -> tuple[EarlyWarning, WarningSignoff, list[Region]]:
    """The pending warning, row-locked, which this leader may decide on; every refusal says why."""
    await queries.get_visible(session, warning_id=warning_id, actor=actor)  # another county's: 404, as absent
    warning = (await session.execute(select(EarlyWarning).where(EarlyWarning.id == warning_id)
                                     .with_for_update())).scalar_one()
    regions = list((await session.execute(select(Region).where(Region.code.in_(warning.targets))
                                          .order_by(Region.path))).scalars())
    if not all(actor.covers(r.path) for r in regions):
        raise Forbidden("this warning reaches beyond your scope: a leader above must sign it off",
                        "该预警范围超出您的管辖范围,须由上级带班领导审核签发", field="warning_id")
    signoff = await session.get(WarningSignoff, warning_id, with_for_update=True)
    if signoff is None:
        raise Conflict("this warning did not need sign-off", "该预警无需审核签发", field="state")
    if signoff.decision == "approved":
        raise Conflict(f"already approved by {signoff.decider}; it was sent once and is not sent again",
                       f"该预警已由{signoff.decider}审核签发并已发出,不能重复签发", field="state")
    if signoff.decision == "rejected":
        raise Conflict(f"rejected by {signoff.decider}; nothing was sent — submit it again to issue it",
                       f"该预警已被{signoff.decider}退回,未发出;如需发布请重新提交", field="state")
    if actor.user_id == signoff.submitted_by:
        raise Forbidden("you submitted this warning: another leader must sign it off",
                        "不能审核签发自己提交的预警,须由另一位带班领导审核", field="warning_id")
    return warning, signoff, regions


async def approve(session: AsyncSession, *, warning_id: int, actor: Actor, now: datetime
                  ) -> service.IssueResult:
    """批准签发: send the warning now, exactly as an issue without sign-off would have."""
    warning, signoff, regions = await _for_decision(session, warning_id=warning_id, actor=actor)
    if warning.expires_at is not None and warning.expires_at <= now:
        raise Conflict("the warning expired while waiting for sign-off; reject it and issue a new one",
                       "该预警在等待审核期间已过失效时间,请退回后重新发布", field="expires_at")
    # It is issued now: deadlines, CAP `sent` and the list's issue time count from the approval.
    warning.state, warning.issued_at, warning.updated_at = WarningState.active.value, now, now
    warning.effective_at = max(warning.effective_at, now)
    warning.reply_code = await service.free_reply_code(session, keep=warning.reply_code)
    signoff.decision, signoff.decided_by, signoff.decider, signoff.decided_at = (
        "approved", actor.user_id, service.username(actor), now)
    await ledger.append(session, at=now, actor=actor.name, action="warning.approved", subject_type="warning",
                        subject_id=warning.id, details={"identifier": warning.identifier, "level": warning.level,
                                                        "submitted_by": signoff.submitter,
                                                        "submitted_at": signoff.submitted_at.isoformat(),
                                                        "approved_by": signoff.decider})
    result = await service.release(session, warning=warning, regions=regions, actor=actor, now=now,
                                   source=warning.source, signoff=signoff)
    log.info("warning_approved", warning_id=warning.id, recipients=result.recipient_count)
    return result


async def reject(session: AsyncSession, *, warning_id: int, reason: str, actor: Actor,
                 now: datetime) -> EarlyWarning:
    """退回: the warning is never sent; the reason is kept for the submitter and the record."""
    warning, signoff, _ = await _for_decision(session, warning_id=warning_id, actor=actor)
    warning.state, warning.updated_at = WarningState.rejected.value, now
    signoff.decision, signoff.decided_by, signoff.decider, signoff.decided_at, signoff.reason = (
        "rejected", actor.user_id, service.username(actor), now, reason)
    await ledger.append(session, at=now, actor=actor.name, action="warning.rejected", subject_type="warning",
                        subject_id=warning.id, details={"identifier": warning.identifier, "level": warning.level,
                                                        "submitted_by": signoff.submitter,
                                                        "rejected_by": signoff.decider, "reason": reason})
    log.info("warning_rejected", warning_id=warning.id)
    return warning
