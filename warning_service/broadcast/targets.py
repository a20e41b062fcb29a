"""What a loudspeaker push addresses: the platform ids of a village's terminals (read by the renderer)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.broadcast.models import Terminal
from warning_service.dialect import chunks


async def terminals_of(session: AsyncSession, villages: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Village code → platform ids of its active terminals, off line ones included: our registry's online
    state may be stale, and the platform's receipt says whether each one played."""
    out: dict[str, list[str]] = {}
    for part in chunks(sorted(set(villages)), 5000):
        for village, pid in (await session.execute(
                select(Terminal.village_code, Terminal.platform_id)
                .where(Terminal.village_code.in_(part), Terminal.active.is_(True))
                .order_by(Terminal.village_code, Terminal.code))).all():
            out.setdefault(village, []).append(pid)
    return {k: tuple(v) for k, v in out.items()}
