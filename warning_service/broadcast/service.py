"""The terminal registry inside the caller's scope, and what a warning's loudspeakers did, village by village."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service import labels
from warning_service.broadcast.models import (
    BroadcastPlay,
    Playback,
    Terminal,
    TerminalIn,
    TerminalOut,
    TerminalPage,
    TerminalPlay,
    VillagePlayback,
)
from warning_service.delivery.models import OutboxMessage
from warning_service.dialect import chunks, in_ids
from warning_service.errors import Conflict, Invalid, NotFound
from warning_service.evacuation.imports import ancestors
from warning_service.region.models import Region
from warning_service.region.scope import Scope

# Levels a terminal may stand in: the fan-out addresses villages, so a terminal must belong to one.
TERMINAL_LEVELS = ("village", "grid")


async def place(session: AsyncSession, *, region_code: str, scope: Scope, field: str = "region_code"
                ) -> tuple[Region, str, str | None]:
    """The region a terminal stands in, inside the scope: (region, its village, its town)."""
    region = await session.get(Region, region_code)
    if region is None:
        raise Invalid(f"unknown region {region_code!r}", f"区划 {region_code!r} 不存在", field=field)
    if not scope.covers(region.path):
        raise Invalid(f"region {region_code} is outside your scope", f"区划 {region_code} 不在您的管辖范围内",
                      field=field)
    village, town = (await ancestors(session, [region]))[region.code]
    if region.level not in TERMINAL_LEVELS or village is None:
        raise Invalid(f"region {region_code} is a {region.level}: a terminal belongs to a village (or its grid)",
                      f"区划 {region_code} 不是村(社区)或网格:广播终端须登记到村", field=field)
    return region, village, town


async def _clash(session: AsyncSession, *, data: TerminalIn, other_than: int | None = None) -> None:
    for column, label_en, label_zh in ((Terminal.code, "code", "编号"),
                                        (Terminal.platform_id, "platform_id", "平台终端编号")):
        value = getattr(data, column.key)
        q = select(Terminal.id).where(column == value)
        if other_than is not None:
            q = q.where(Terminal.id != other_than)
        if (await session.execute(q)).first():
            raise Conflict(f"a terminal with {label_en} {value} exists", f"{label_zh} {value} 已被其他终端使用",
                           field=label_en)


async def create(session: AsyncSession, *, data: TerminalIn, scope_path: str, now: datetime) -> Terminal:
    region, village, town = await place(session, region_code=data.region_code, scope=Scope(scope_path))
    await _clash(session, data=data)
    row = Terminal(**data.model_dump(), village_code=village, town_code=town, created_at=now, updated_at=now)
    row.region_code = region.code
    session.add(row)
    await session.flush()
    return row


async def get(session: AsyncSession, *, terminal_id: int, scope_path: str) -> Terminal:
    """A terminal in the caller's scope; outside it, it does not exist for them."""
    row = (await session.execute(select(Terminal).join(Region, Region.code == Terminal.region_code).where(
        Terminal.id == terminal_id, Scope(scope_path).predicate(Region.path)))).scalar_one_or_none()
    if row is None:
        raise NotFound(f"terminal {terminal_id} not found", f"广播终端 {terminal_id} 不存在", field="id")
    return row


async def replace(session: AsyncSession, *, terminal_id: int, data: TerminalIn, scope_path: str,
                  now: datetime) -> Terminal:
    row = await get(session, terminal_id=terminal_id, scope_path=scope_path)
    region, village, town = await place(session, region_code=data.region_code, scope=Scope(scope_path))
    await _clash(session, data=data, other_than=terminal_id)
    for k, v in data.model_dump().items():
        setattr(row, k, v)
    row.region_code, row.village_code, row.town_code = region.code, village, town
    row.active, row.updated_at = True, now
    await session.flush()
    return row


async def deactivate(session: AsyncSession, *, terminal_id: int, scope_path: str, now: datetime) -> Terminal:
    """No longer addressed; kept so past warnings' receipts still name it."""
    row = await get(session, terminal_id=terminal_id, scope_path=scope_path)
    row.active, row.updated_at = False, now
    await session.flush()
    return row


async def list_terminals(session: AsyncSession, *, scope_path: str, region_code: str | None = None,
                         online: bool | None = None, include_inactive: bool = False, offset: int = 0,
                         limit: int = 100) -> TerminalPage:
    """Terminals in the scope (or one region's subtree inside it), by town, village and code."""
    scope = Scope(scope_path)
    if region_code:
        area = await session.get(Region, region_code)
        if area is None or not scope.covers(area.path):
            raise NotFound(f"region {region_code} not found in your scope", f"您的管辖范围内没有区划 {region_code}",
                           field="region")
        scope = Scope(area.path)
    where = [scope.predicate(Region.path)]
    if not include_inactive:
        where.append(Terminal.active.is_(True))
    base = select(Terminal).join(Region, Region.code == Terminal.region_code).where(*where)
    counts = (await session.execute(select(
        func.count(), func.coalesce(func.sum(case((Terminal.online.is_(True), 1), else_=0)), 0))
        .select_from(Terminal).join(Region, Region.code == Terminal.region_code).where(*where))).one()
    if online is not None:
        base = base.where(Terminal.online.is_(online))
    rows = list((await session.execute(base.order_by(Terminal.town_code, Terminal.village_code, Terminal.code)
                                       .offset(offset).limit(limit))).scalars())
    total = int(counts[0]) if online is None else (await session.execute(
        select(func.count()).select_from(base.subquery()))).scalar_one()
    return TerminalPage(total=total, online=int(counts[1]), offline=int(counts[0]) - int(counts[1]),
                        items=await public(session, rows))


async def _names(session: AsyncSession, codes: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in chunks(sorted(codes), 5000):
        rows = await session.execute(select(Region.code, Region.name).where(in_ids(session, Region.code, part)))
        out.update(dict(rows.all()))
    return out


async def public(session: AsyncSession, rows: Sequence[Terminal]) -> list[TerminalOut]:
    names = await _names(session, {c for r in rows for c in (r.village_code, r.town_code) if c})
    return [TerminalOut(id=r.id or 0, code=r.code, name=r.name, region_code=r.region_code,
                        village_code=r.village_code, town_code=r.town_code,
                        village_name=names.get(r.village_code, r.village_code),
                        town_name=names.get(r.town_code or "", ""), platform_id=r.platform_id, online=r.online,
                        last_seen_at=r.last_seen_at, note=r.note, active=r.active) for r in rows]


# --- what a warning's loudspeakers did --------------------------------------------------------------------------

_NOT_SENT = ("failed", "undelivered", "cancelled")


def _state(message_status: str, play: Any | None) -> str:
    if play is not None:
        return str(play.status)
    if message_status in ("queued", "sending"):
        return "queued"
    if message_status in _NOT_SENT:
        return "not_sent"
    return "no_receipt"


def _play(code: str | None, name: str, platform_id: str, online: bool | None, state: str, p: Any | None
          ) -> TerminalPlay:
    error = p.error_code if p else None
    return TerminalPlay(code=code, name=name, platform_id=platform_id, online=online, state=state,
                        state_zh=labels.zh(labels.BROADCAST_PLAY, state), repeats=p.repeats if p else 0,
                        error=error, error_zh=labels.zh(labels.BROADCAST_ERROR, error))


async def playback(session: AsyncSession, *, warning_id: int, scope_path: str) -> Playback:
    """Each village the warning's loudspeaker messages went to (its latest message), each terminal's play;
    villages where any terminal did not finish come first: someone must go there."""
    latest = (select(OutboxMessage.region_code, func.max(OutboxMessage.id).label("id"))
              .where(OutboxMessage.warning_id == warning_id, OutboxMessage.channel == "broadcast",
                     OutboxMessage.region_code.is_not(None))
              .group_by(OutboxMessage.region_code).subquery())
    messages = (await session.execute(
        select(OutboxMessage.id, OutboxMessage.region_code, OutboxMessage.status)
        .join(latest, latest.c.id == OutboxMessage.id)
        .join(Region, Region.code == OutboxMessage.region_code)
        .where(Scope(scope_path).predicate(Region.path)))).all()
    by_village = {m.region_code: m for m in messages}
    villages = sorted(by_village)
    terminals: dict[str, list[Terminal]] = {}
    plays: dict[tuple[int, str], Any] = {}
    by_message: dict[int, list[Any]] = {}  # a village's plays without scanning every play for each village
    for part in chunks(villages, 2000):
        for t in (await session.execute(select(Terminal).where(in_ids(session, Terminal.village_code, part))
                                        .order_by(Terminal.code))).scalars():
            terminals.setdefault(t.village_code, []).append(t)
        ids = [by_village[v].id for v in part]
        found = await session.execute(select(BroadcastPlay).where(in_ids(session, BroadcastPlay.outbox_id, ids)))
        for p in found.scalars():
            plays[(p.outbox_id, p.terminal_ref)] = p
            by_message.setdefault(p.outbox_id, []).append(p)
    towns: dict[str, str | None] = {}
    for part in chunks(villages, 5000):
        rows = await session.execute(select(Region.code, Region.parent_code).where(in_ids(session, Region.code, part)))
        towns.update(dict(rows.all()))
    names = await _names(session, set(villages) | {t for t in towns.values() if t})
    items = []
    for v in villages:
        m = by_village[v]
        known = {t.platform_id for t in terminals.get(v, [])}
        rows = [_play(t.code, t.name, t.platform_id, t.online, _state(m.status, p := plays.get((m.id, t.platform_id))),
                      p) for t in terminals.get(v, []) if t.active or (m.id, t.platform_id) in plays]
        # A terminal the platform reported that our registry does not know still counts.
        rows += [_play(None, p.terminal_ref, p.terminal_ref, None, p.status, p) for p in by_message.get(m.id, [])
                 if p.terminal_ref not in known]
        played = sum(1 for r in rows if r.state == "finished")
        items.append(VillagePlayback(
            village_code=v, village_name=names.get(v, v), town_name=names.get(towns.get(v) or "", ""),
            message_status=m.status, played=played, terminals=rows,
            not_played=not rows or played < len(rows)))
    items.sort(key=lambda i: (not i.not_played, i.town_name, i.village_code))
    return Playback(warning_id=warning_id, villages=len(items), villages_not_played=sum(i.not_played for i in items),
                    terminals=sum(len(i.terminals) for i in items),
                    terminals_played=sum(i.played for i in items), items=items)


async def not_played(session: AsyncSession, *, warning_id: int, scope_path: str, limit: int = 500
                     ) -> dict[str, Any]:
    """The playback's figures and the villages whose loudspeakers did not all play (the report's section)."""
    p = await playback(session, warning_id=warning_id, scope_path=scope_path)
    missing = [v for v in p.items if v.not_played]
    return {"villages": p.villages, "villages_not_played": p.villages_not_played, "terminals": p.terminals,
            "terminals_played": p.terminals_played, "not_played": [v.model_dump(mode="json") for v in missing[:limit]]}
