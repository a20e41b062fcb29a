"""What a report looks at: a warning seen from one region inside the auditor's scope, read in one snapshot.

Auditors name regions as they know them — "温岭市", "箬横镇" — so a region parameter is a code or a name;
a name is looked up only inside the caller's scope, and a name that several regions share is refused
with the candidates listed rather than guessed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service import labels
from warning_service.db import Database
from warning_service.early_warning.models import EarlyWarning, WarningTarget
from warning_service.errors import Forbidden, Invalid, NotFound
from warning_service.region.models import LEVEL_ORDER, Region

SEARCH_LIMIT = 20


def _within(path_col: Any, scope: Region) -> Any:
    return (path_col >= scope.path) & (path_col < scope.path + "\x7f")


async def region_param(session: AsyncSession, *, code: str | None, scope: Region) -> Region:
    """The region a report is narrowed to, by code or by name: inside the caller's scope (403), existing
    (422), and unambiguous (422 naming the candidates)."""
    if not code or not code.strip():
        return scope
    value = code.strip()
    region = await session.get(Region, value)
    if region is not None:
        if not region.path.startswith(scope.path):
            raise Forbidden(f"region {value} is outside your scope {scope.code}",
                            f"区划 {value} 不在您的管辖范围 {scope.code} 内", field="region")
        return region
    named = (await session.execute(select(Region).where(Region.name == value, _within(Region.path, scope))
                                   .order_by(Region.path).limit(SEARCH_LIMIT))).scalars().all()
    if len(named) == 1:
        return named[0]
    if named:
        choices = "、".join(f"{r.name}({r.code})" for r in named)
        raise Invalid(f"{len(named)} regions are named {value}: {choices}; choose one by code",
                      f"有 {len(named)} 个区划名为 {value}:{choices},请按代码选择", field="region")
    raise Invalid(f"region {value} does not exist in your scope {scope.name}",
                  f"您的管辖范围 {scope.name} 内没有区划 {value}", field="region")


async def search_regions(session: AsyncSession, *, scope: Region, text: str, limit: int = SEARCH_LIMIT
                         ) -> list[dict[str, Any]]:
    """Regions inside `scope` whose name contains `text` (or whose code starts with it), highest level
    first, each with its path of names so two 新河村 can be told apart."""
    value = text.strip()
    if not value:
        return []
    # LIKE wildcards typed by the user are matched literally.
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = (await session.execute(
        select(Region.code, Region.name, Region.level, Region.path, Region.depth)
        .where(_within(Region.path, scope),
               or_(Region.name.like(f"%{escaped}%", escape="\\"), Region.code.like(f"{escaped}%", escape="\\")))
        .order_by(Region.depth, func.length(Region.name), Region.path).limit(limit))).all()
    ancestors = {c for r in rows for c in r.path.strip("/").split("/")}
    names = dict((await session.execute(select(Region.code, Region.name)
                                        .where(Region.code.in_(sorted(ancestors))))).all()) if rows else {}
    return [{"code": r.code, "name": r.name, "level": r.level, "level_zh": labels.zh(labels.REGION_LEVEL, r.level),
             "path_names": "/".join(names.get(c, c) for c in r.path.strip("/").split("/")
                                    if LEVEL_ORDER.get(r.level, 0) >= 0)}
            for r in rows]


@dataclass
class Scoped:
    """A warning seen from one region: the report counts only notices inside `region`."""

    warning: EarlyWarning
    region: Region
    # The region holds every target, so no notice of the warning lies outside it and filters can go.
    whole: bool

    @property
    def path(self) -> str | None:
        return None if self.whole else self.region.path


async def scoped_warning(session: AsyncSession, *, warning_id: int, region: Region) -> Scoped:
    """The warning if it reaches into `region` (a target inside it, or a target containing it)."""
    warning = await session.get(EarlyWarning, warning_id)
    if warning is None:
        raise NotFound(f"warning {warning_id} not found", f"预警 {warning_id} 不存在", field="warning_id")
    paths = (await session.execute(
        select(Region.path).join(WarningTarget, WarningTarget.region_code == Region.code)
        .where(WarningTarget.warning_id == warning_id))).scalars().all()
    if not any(p.startswith(region.path) or region.path.startswith(p) for p in paths):
        raise Forbidden(f"warning {warning_id} does not reach {region.code} ({region.name})",
                        f"预警 {warning_id} 不涉及 {region.name}({region.code})", field="warning_id")
    return Scoped(warning=warning, region=region, whole=all(p.startswith(region.path) for p in paths))


async def release(request_session: AsyncSession) -> None:
    """End the request's transaction before a long read (through a snapshot of its own, or a child process) or a
    long response (a stream, a file: the request's session closes only once the response is sent). Left open, it
    sat idle in transaction all that time, holding a connection (a report then took two, and a burst of them could
    take the whole pool) and PostgreSQL's vacuum horizon. The session stays usable: its next statement begins a
    new transaction."""
    await request_session.commit()


@asynccontextmanager
async def snapshot(db: Database, *, releasing: AsyncSession | None = None) -> AsyncIterator[AsyncSession]:
    """A read-only session whose statements all see one moment (REPEATABLE READ on PostgreSQL); `releasing`:
    the request's session, whose transaction ends first (see `release`).

    A report runs several statements while answers keep arriving; in one snapshot its totals, missing
    list and channels agree with each other. (On SQLite each statement reads the latest data.)
    """
    if releasing is not None:
        await release(releasing)
    async with db.sessionmaker() as session:
        if db.engine.dialect.name == "postgresql":
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ",
                                                        "postgresql_readonly": True})
        try:
            yield session
        finally:
            await session.rollback()


def ack_deadline_of(warning: EarlyWarning) -> float | None:
    policy = warning.policy or {}
    if not (policy.get("ack_required") and policy.get("ack_deadline")):
        return None
    return float(policy["ack_deadline"])
