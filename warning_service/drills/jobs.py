"""Worker job: issue the drills and number checks that are due, each exactly once."""

from __future__ import annotations

from warning_service.drills import service
from warning_service.runtime import Runtime


async def drill_tick(rt: Runtime) -> int:
    """One run per transaction: a province-wide drill is a big issue, and one failing leaves the rest alone.
    演练预告 due go first (a drill's notice never follows the drill itself). Returns the drills issued."""
    while not rt.stopping.is_set():
        async with rt.db.session() as s:
            told = await service.issue_notices(s, policy=rt.policy, settings=rt.settings, now=rt.clock.now(), limit=1)
        if not told:
            break
    total = 0
    while not rt.stopping.is_set():
        async with rt.db.session() as s:
            done = await service.issue_due(s, policy=rt.policy, settings=rt.settings, now=rt.clock.now(), limit=1)
        if not done:
            return total
        total += len(done)
    return total
