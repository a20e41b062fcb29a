"""Dry-run of an issue: who it would reach and what they would read, with nothing written.

The count comes from the issue's own recipient conditions (`notice.service.recipient_conditions`), as one grouped
read, so it is the issue's count. The texts come from the real templates through the real renderer: the
warning, its first revision and one sample notice are written inside a savepoint, rendered, and the
savepoint is rolled back — the same code path as a sent message, and nothing survives the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import sms_segments
from warning_service.actor import Actor
from warning_service.config import Settings
from warning_service.early_warning import messages
from warning_service.early_warning.models import EarlyWarning, WarningCreate, WarningRevision, WarningState
from warning_service.early_warning.policy import PolicyBook
from warning_service.early_warning.service import free_reply_code, prepare_warning
from warning_service.notice import service as notices
from warning_service.person.models import ROLE_ZH, Person
from warning_service.region.models import Region
from warning_service.region.scope import Scope

# Where someone at county level (above every town) is counted in the breakdown by town.
ABOVE_TOWNS = "县级及以上"


@dataclass
class RenderedText:
    channel: str
    in_policy: bool
    body: str
    subject: str | None = None
    html: str | None = None
    chars: int = 0
    segments: int | None = None


@dataclass
class Preview:
    recipient_count: int
    by_role: list[dict[str, Any]]
    by_town: list[dict[str, Any]]
    area: str
    title: str
    instruction: str
    policy: dict[str, Any]
    texts: list[RenderedText] = field(default_factory=list)
    sample_recipient: dict[str, Any] | None = None


async def preview_issue(session: AsyncSession, *, data: WarningCreate, actor: Actor, policy: PolicyBook,
                        settings: Settings, now: datetime) -> Preview:
    """What issuing `data` now would do. Raises the same errors as the issue; leaves the database unchanged."""
    regions, warning = await prepare_warning(session, data=data, actor=actor, policy=policy, settings=settings,
                                             now=now)
    return await _preview(session, regions=regions, warning=warning, settings=settings, now=now)


async def preview_held(session: AsyncSession, *, warning: EarlyWarning, settings: Settings,
                       now: datetime) -> Preview:
    """What approving a warning held for sign-off would send now: the leader's view before 批准签发."""
    regions = await _targets(session, warning)
    try:
        return await _preview(session, regions=regions, warning=warning, settings=settings, now=now, held=True)
    finally:
        # The savepoint's rollback expired what the rendering changed on the stored warning: read it back
        # now, while we may still do IO, rather than in a template.
        await session.refresh(warning)


async def _preview(session: AsyncSession, *, regions: list[Region], warning: EarlyWarning, settings: Settings,
                   now: datetime, held: bool = False) -> Preview:
    roles = list(warning.policy["roles"])
    conds = notices.recipient_conditions(target_paths=[r.path for r in regions], roles=roles)
    by_role = {role: int(n) for role, n in (await session.execute(
        select(Person.role, func.count()).select_from(Person).join(Region, Region.code == Person.region_code)
        .where(*conds).group_by(Person.role))).all()}
    by_town = await _count_by_town(session, regions=regions, conds=conds, by_role=by_role)
    total = sum(by_role.values())
    sample = (await session.execute(
        select(Person.id, Person.name, Person.role, Person.region_code).select_from(Person)
        .join(Region, Region.code == Person.region_code).where(*conds).order_by(Region.path, Person.id).limit(1)
    )).first()
    # Read before rendering: the savepoint's rollback expires a stored warning's attributes.
    area, title, instruction, snapshot = warning.area_desc, warning.title, warning.instruction, warning.policy
    texts = await _render_texts(session, warning=warning, sample=sample, settings=settings, now=now, held=held)
    return Preview(
        recipient_count=total,
        by_role=[{"role": r, "role_zh": ROLE_ZH.get(r, r), "count": n} for r, n in sorted(by_role.items())],
        by_town=by_town, area=area, title=title, instruction=instruction, policy=snapshot,
        texts=texts,
        sample_recipient=({"name": sample.name, "role": sample.role, "region_code": sample.region_code}
                          if sample else None))


async def _count_by_town(session: AsyncSession, *, regions: list[Region], conds: list[Any],
                         by_role: dict[str, int]) -> list[dict[str, Any]]:
    """Recipients per town, grouped on their region path's town prefix (an equality, not a range join).

    A range join of every person to the towns around them costs persons × towns comparisons at province
    scale; the town is instead read off the path, whose prefix of the town's path length is the town's path.
    """
    ancestors = {c for r in regions for c in r.path.strip("/").split("/")}
    towns = (await session.execute(select(Region.code, Region.name, Region.path).where(
        Region.level == "town",
        or_(Scope.any_of(Region.path, [r.path for r in regions]), Region.code.in_(ancestors))))).all()
    by_path = {t.path: t for t in towns}
    counts: dict[str, int] = {}
    for length in sorted({len(t.path) for t in towns}):
        prefix = func.substr(Region.path, 1, length)
        for p, n in (await session.execute(
                select(prefix, func.count()).select_from(Person).join(Region, Region.code == Person.region_code)
                .where(*conds, func.length(Region.path) >= length).group_by(prefix))).all():
            if p in by_path:
                counts[by_path[p].code] = counts.get(by_path[p].code, 0) + int(n)
    out = [{"code": t.code, "name": t.name, "count": counts[t.code]} for t in sorted(towns, key=lambda t: t.path)
           if counts.get(t.code)]
    above = sum(by_role.values()) - sum(counts.values())
    if above:
        out.insert(0, {"code": None, "name": ABOVE_TOWNS, "count": above})
    return out


async def _render_texts(session: AsyncSession, *, warning: EarlyWarning, sample: Any, settings: Settings,
                        now: datetime, held: bool = False) -> list[RenderedText]:
    channels = set(warning.policy["channels"]) | ({warning.policy["recall_channel"]} - {None})
    nested = await session.begin_nested()
    try:
        if held:
            # Rendered as approval would send it: in force, with the reply code it would then carry.
            warning.state = WarningState.active.value
            warning.reply_code = await free_reply_code(session, keep=warning.reply_code)
        session.add(warning)
        await session.flush()
        session.add(WarningRevision(
            warning_id=warning.id, revision=1, msg_type="alert", identifier=warning.identifier, references=None,
            sent_at=now, level=warning.level, title=warning.title, description=warning.description,
            instruction=warning.instruction, targets=warning.targets, area_desc=warning.area_desc,
            expires_at=warning.expires_at))
        notice_id = None
        if sample is not None:
            notice_id = await notices.open_one(session, warning=warning, person=sample, now=now)
        rows = [SimpleNamespace(id=-i, warning_id=warning.id, revision=1, notice_id=notice_id, kind="alert",
                                channel=c, address="", region_code=None, idempotency_key=f"preview-{c}")
                for i, c in enumerate(("sms", "voice", "email"), start=1) if notice_id is not None]
        village = (await session.execute(select(Region.code).where(
            Region.level == "village", Scope.any_of(Region.path, [r.path for r in await _targets(session, warning)]))
            .order_by(Region.path).limit(1))).scalar_one_or_none()
        rows.append(SimpleNamespace(id=-9, warning_id=warning.id, revision=1, notice_id=None, kind="alert",
                                    channel="broadcast", address=village or "", region_code=village,
                                    idempotency_key="preview-broadcast"))
        rendered = await messages.render_outbox(session, rows=rows, settings=settings, now=now)
        link_prefix = f"{settings.public_base_url}/a/"
        out = []
        for row in rows:
            m = rendered[row.id]
            body = _mask_link(m.body, link_prefix)
            out.append(RenderedText(
                channel=row.channel, in_policy=row.channel in channels, body=body, subject=m.subject,
                html=_mask_link(m.html, link_prefix) if m.html else None, chars=len(body),
                segments=sms_segments(body) if row.channel == "sms" else None))
        return out
    finally:
        # Whatever happened above, none of it stays: the preview writes nothing.
        await nested.rollback()


async def _targets(session: AsyncSession, warning: EarlyWarning) -> list[Region]:
    return list((await session.execute(select(Region).where(Region.code.in_(warning.targets)))).scalars())


def _mask_link(text: str, prefix: str) -> str:
    """The sample notice's link is a real signed token: show one of the same length that opens nothing."""
    start = text.find(prefix)
    while start >= 0:
        i = start + len(prefix)
        j = i
        while j < len(text) and (text[j].isalnum() or text[j] in "-_"):
            j += 1
        text = text[:i] + "x" * (j - i) + text[j:]
        start = text.find(prefix, j)
    return text
