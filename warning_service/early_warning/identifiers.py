"""GB/T 35965.1 identifiers: {6-digit division}{3-digit agency}{3-digit sub-code}{2-digit ext}_{YYYYMMDDhhmmss}_{N}."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.early_warning.models import UNSENT_STATES, EarlyWarning, WarningRevision

CHINA_TZ = timezone(timedelta(hours=8))


def sender_code(region_code: str, *, agency: str = "000", sub: str = "000", ext: str = "00") -> str:
    """The 14-digit sender code of an issuing unit in a region ('33' → '330000', '331081001' → '331081')."""
    division = (region_code[:6]).ljust(6, "0")
    return f"{division}{agency:0>3}{sub:0>3}{ext:0>2}"


async def next_identifier(session: AsyncSession, *, code: str, at: datetime) -> str:
    """The next free identifier for this sender and second (timestamps in Beijing time, as issuers write them)."""
    stamp = at.astimezone(CHINA_TZ).strftime("%Y%m%d%H%M%S")
    prefix = f"{code}_{stamp}_"
    taken = (await session.execute(select(func.count()).select_from(WarningRevision).where(
        WarningRevision.identifier.startswith(prefix)))).scalar_one()
    # A warning held for sign-off (or rejected) owns its identifier before any revision carries it.
    held = (await session.execute(select(func.count()).select_from(EarlyWarning).where(
        EarlyWarning.identifier.startswith(prefix), EarlyWarning.state.in_(UNSENT_STATES)))).scalar_one()
    return f"{prefix}{taken + held + 1}"
