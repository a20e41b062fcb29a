"""Relaying CAP 1.2 alerts from upstream platforms: keep their identifier and sender, map areas to regions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.actor import Actor
from warning_service.config import Settings
from warning_service.early_warning import cap, service
from warning_service.early_warning.models import (
    EarlyWarning,
    Hazard,
    Level,
    WarningCreate,
    WarningLift,
    WarningRevision,
    WarningStatus,
    WarningUpdate,
)
from warning_service.early_warning.policy import PolicyBook
from warning_service.early_warning.queries import get_visible
from warning_service.errors import Conflict, Forbidden, Invalid, NotFound
from warning_service.region.models import Region


@dataclass
class RelayResult:
    warning: EarlyWarning
    recipient_count: int
    action: str  # issued | updated | lifted | duplicate


async def _regions_for(session: AsyncSession, geocodes: list[str]) -> list[str]:
    out: list[str] = []
    for code in geocodes:
        candidates = cap.division_candidates(code)
        found = (await session.execute(select(Region.code).where(Region.code.in_(candidates)))).scalars().all()
        if not found:
            raise Invalid(f"CAP area geocode {code} is not a known region", f"CAP 区域代码 {code} 不是已知区划",
                          field="area.geocode", value=code)
        out.append(sorted(found, key=len)[-1])
    return out


async def receive_cap(session: AsyncSession, *, raw: bytes, actor: Actor, policy: PolicyBook, settings: Settings,
                      now: datetime) -> RelayResult:
    """Issue, update or lift from a CAP alert; a repeat of an identifier already received changes nothing."""
    parsed = cap.parse_cap(raw)
    if parsed.status not in WarningStatus.__members__:
        raise Invalid(f"CAP status {parsed.status!r} is not relayed (Actual, Exercise, Test)",
                      f"不转发状态为 {parsed.status!r} 的 CAP 消息", field="status")
    if parsed.sender not in settings.trusted_cap_senders():
        # The relay publishes under the upstream's identifier and sender code; only for issuers this
        # deployment chose to trust, or anyone with a duty login could speak as the provincial observatory.
        raise Forbidden(f"CAP sender {parsed.sender!r} is not a trusted upstream (CAP_TRUSTED_SENDERS)",
                        f"CAP 发布者 {parsed.sender!r} 不在受信任的上游列表中(CAP_TRUSTED_SENDERS)", field="sender")
    dup = (await session.execute(select(WarningRevision.warning_id).where(
        WarningRevision.identifier == parsed.identifier))).scalar_one_or_none()
    if dup is not None:
        try:
            return RelayResult(await get_visible(session, warning_id=dup, actor=actor), 0, "duplicate")
        except NotFound:
            # Received already, by another county: say so without naming their warning.
            raise Conflict(f"CAP identifier {parsed.identifier} was already received outside your scope",
                           f"CAP 标识 {parsed.identifier} 已由其他辖区接收", field="identifier") from None
    targets = await _regions_for(session, parsed.geocodes)
    if parsed.msg_type == "alert":
        data = WarningCreate(
            hazard=Hazard(parsed.hazard), level=Level(parsed.level), status=WarningStatus(parsed.status),
            title=parsed.headline, description=parsed.description, instruction=parsed.instruction,
            sender=parsed.sender_name or parsed.sender, effective_at=parsed.effective, expires_at=parsed.expires,
            targets=targets, identifier=parsed.identifier,
            sender_code=parsed.sender if parsed.sender.isdigit() and len(parsed.sender) == 14 else None)
        result = await service.issue_warning(session, data=data, actor=actor, policy=policy, settings=settings,
                                             now=now, source="cap")
        return RelayResult(result.warning, result.recipient_count, "issued")
    referenced = [r.split(",")[1] for r in parsed.references if r.count(",") >= 2]
    warning_id = (await session.execute(select(WarningRevision.warning_id).where(
        WarningRevision.identifier.in_(referenced)).limit(1))).scalar_one_or_none() if referenced else None
    if warning_id is None:
        raise Invalid(f"CAP {parsed.msg_type} references no warning received here",
                      "CAP 更新/解除消息引用的预警不存在", field="references")
    if parsed.msg_type == "cancel":
        # The issuer's own words are the reason; a bare Cancel still says truthfully who lifted it.
        reason = parsed.description or f"{parsed.sender_name or '原发布单位'}已解除该预警"
        w = await service.lift_warning(session, warning_id=warning_id, data=WarningLift(reason=reason), actor=actor,
                                       now=now, identifier=parsed.identifier)
        return RelayResult(w, 0, "lifted")
    upd = WarningUpdate(level=Level(parsed.level), title=parsed.headline, description=parsed.description,
                        instruction=parsed.instruction, targets=targets, expires_at=parsed.expires)
    res = await service.update_warning(session, warning_id=warning_id, data=upd, actor=actor, policy=policy,
                                       settings=settings, now=now, identifier=parsed.identifier)
    return RelayResult(res.warning, res.new_recipients, "updated")
