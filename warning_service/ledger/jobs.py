"""Worker job: chain pending decisions into the ledger."""

from __future__ import annotations

from warning_service.ledger import service
from warning_service.logging import get_logger
from warning_service.runtime import Runtime

log = get_logger(__name__)


async def seal_tick(rt: Runtime) -> int:
    """Seal everything pending, batch by batch; a broken chain stops sealing and is logged every tick."""
    key = service.ledger_key(rt.settings.secret_key.get_secret_value())
    total = 0
    while True:
        try:
            async with rt.db.session() as s:
                n = await service.seal(s, key=key)
        except service.LedgerBroken as exc:
            # Decisions stay in ledger_pending (nothing is lost) until an operator has looked.
            log.error("ledger_seal_refused", reason=str(exc), sealed_before=total)
            return total
        total += n
        if n == 0:
            return total
