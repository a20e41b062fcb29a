"""Worker job: chain pending decisions into the ledger."""

from __future__ import annotations

from warning_service.ledger import service
from warning_service.runtime import Runtime


async def seal_tick(rt: Runtime) -> int:
    key = service.ledger_key(rt.settings.secret_key.get_secret_value())
    total = 0
    while True:
        async with rt.db.session() as s:
            n = await service.seal(s, key=key)
        total += n
        if n == 0:
            return total
