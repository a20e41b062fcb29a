"""The report on one warning: reached, delivered, answered on time / late / by proxy / never, by channel,
by level and rolled up the hierarchy; time to answer; escalations. All aggregates run in the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Integer, and_, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service import labels
from warning_service.broadcast import service as broadcast
from warning_service.delivery.models import STATUS_RANK
from warning_service.dialect import chunks
from warning_service.dialect import name as dialect_name
from warning_service.early_warning.models import HAZARD_ZH, LEVEL_ZH, EarlyWarning
from warning_service.errors import Invalid
from warning_service.person.models import ROLE_ZH
from warning_service.region.models import LEVEL_ORDER, Region
from warning_service.region.models import LEVEL_ZH as REGION_LEVEL_ZH
from warning_service.report import feedback as fb
from warning_service.report import queries as q
from warning_service.report.missing import missing_page
from warning_service.report.queries import OB, Counts, R
from warning_service.report.scope import Scoped, ack_deadline_of

ROLLUP_CHOICES = ("none", "county", "town", "village", "grid")
STATUS_ZH = labels.WARNING_STATUS


def warning_info(w: EarlyWarning) -> dict[str, Any]:
    return {"id": w.id, "identifier": w.identifier, "title": w.title, "sender": w.sender,
            "hazard": w.hazard, "hazard_zh": HAZARD_ZH.get(w.hazard, w.hazard),
            "level": w.level, "level_zh": LEVEL_ZH.get(w.level),
            "status": w.status, "status_zh": STATUS_ZH.get(w.status, w.status), "state": w.state,
            "state_zh": labels.zh(labels.WARNING_STATE, w.state),
            "issued_at": w.issued_at, "lifted_at": w.lifted_at, "ack_round": w.ack_round,
            "ack_required": bool((w.policy or {}).get("ack_required")),
            "ack_deadline_seconds": ack_deadline_of(w), "targets": w.targets, "area_desc": w.area_desc}


async def warning_report(session: AsyncSession, *, scoped: Scoped, now: datetime, rollup: str = "town",
                         missing_offset: int = 0, missing_limit: int = 50, proxy_offset: int = 0,
                         proxy_limit: int = 50, nodes_offset: int = 0, nodes_limit: int | None = None
                         ) -> dict[str, Any]:
    """Everything an auditor asks of one warning, as JSON-ready data.

    The roll-up's nodes, the missing list and the proxy answers are paged (`*_offset`, `*_limit`): a
    province rolled up to grids has ~10^5 nodes, which no page shows and no client should hold at once.
    """
    report, tree = await report_and_rollup(session, scoped=scoped, now=now, rollup=rollup,
                                           missing_offset=missing_offset, missing_limit=missing_limit,
                                           proxy_offset=proxy_offset, proxy_limit=proxy_limit)
    report["rollup"] = tree.page(offset=nodes_offset, limit=nodes_limit)
    return report


async def report_and_rollup(session: AsyncSession, *, scoped: Scoped, now: datetime, rollup: str = "town",
                            missing_offset: int = 0, missing_limit: int = 50, proxy_offset: int = 0,
                            proxy_limit: int = 50) -> tuple[dict[str, Any], Rollup]:
    """The report without its roll-up nodes, and the roll-up, whose nodes are built as they are read
    (an export streams all of them; a page builds only its own)."""
    if rollup not in ROLLUP_CHOICES:
        raise Invalid(f"rollup must be one of {', '.join(ROLLUP_CHOICES)}",
                      f"rollup 应为 {', '.join(ROLLUP_CHOICES)} 之一", field="rollup")
    w = scoped.warning
    await q.tune(session)
    grouped = await _grouped(session, scoped=scoped, rollup=rollup)
    totals = grouped["all"][""]
    timing = await _timing(session, scoped=scoped, steps=grouped["step"])
    missing_total, missing = await missing_page(session, scoped=scoped, now=now, offset=missing_offset,
                                                limit=missing_limit, total=totals.never)
    tree = await _rollup(session, grouped=grouped, totals=totals, scope=scoped.region)
    report = {
        "warning": warning_info(w),
        "region": {"code": scoped.region.code, "name": scoped.region.name, "path": scoped.region.path},
        "generated_at": now,
        "totals": totals.as_dict(),
        "by_ack_path": {k: v.acknowledged for k, v in grouped["ack_path"].items() if k},
        "time_to_ack": timing["percentiles"],
        "timeline": timing["timeline"],
        "by_channel": await _channels(session, scoped=scoped),
        "by_level": [{"level": k, "level_zh": REGION_LEVEL_ZH.get(k, k), **v.as_dict()}
                     for k, v in sorted(grouped["level"].items(), key=lambda kv: _level_order(kv[0]))],
        "by_role": [{"role": k, "role_zh": ROLE_ZH.get(k, k), **v.as_dict()}
                    for k, v in sorted(grouped["role"].items())],
        "rollup": None,
        "escalations": await _escalations(session, scoped=scoped),
        "missing": {"total": missing_total, "offset": missing_offset, "limit": missing_limit,
                    "items": missing},
        "feedback": await fb.feedback_summary(session, scoped=scoped, now=now),
        "proxy": await fb.proxy_answers(session, scoped=scoped, offset=proxy_offset, limit=proxy_limit),
        "history": await fb.history(session, warning=w),
        # 应急广播: villages whose loudspeakers did not all play, for someone to be sent there.
        "broadcast": await broadcast.not_played(session, warning_id=w.id, scope_path=scoped.region.path),
    }
    return report, tree


class NodeRegion(NamedTuple):
    """What a roll-up node shows of its region (a plain tuple: a SQLAlchemy Row's r.name costs ~10× more,
    read for each of ~10^5 nodes)."""

    name: str
    parent_code: str | None
    path: str


@dataclass
class Rollup:
    """The roll-up's nodes in region-path order, each built only when read: a province to grids has ~10^5
    nodes, and as dicts they would take hundreds of megabytes that neither a page nor a stream needs."""

    levels: list[str]
    above: Counts
    # (path, level, code), sorted by path; the counts stay in `grouped`, the names in `info`.
    entries: list[tuple[str, str, str]]
    grouped: dict[str, Any]
    info: dict[str, NodeRegion]

    def __len__(self) -> int:
        return len(self.entries)

    def node(self, entry: tuple[str, str, str]) -> dict[str, Any]:
        _path, lvl, code = entry
        sub, own = self.grouped[lvl][code]
        r = self.info.get(code)
        return {"code": code, "name": r.name if r else code, "level": lvl,
                "parent_code": r.parent_code if r else None, "path": r.path if r else "",
                "subtree": sub.as_dict(), "own": own.as_dict()}

    def nodes(self, *, offset: int = 0, limit: int | None = None) -> Iterator[dict[str, Any]]:
        end = None if limit is None else offset + limit
        return (self.node(e) for e in self.entries[offset:end])

    def page(self, *, offset: int, limit: int | None) -> dict[str, Any]:
        return {"levels": self.levels, "nodes": list(self.nodes(offset=offset, limit=limit)),
                "above": self.above.as_dict(), "nodes_total": len(self.entries), "nodes_offset": offset,
                "nodes_limit": limit}


def _level_order(level: str) -> int:
    return LEVEL_ORDER.get(level, 99)


FINE = 5  # seconds: answers are counted in 5-second steps, then drawn in coarser ones


async def _grouped(session: AsyncSession, *, scoped: Scoped, rollup: str) -> dict[str, dict[str, Any]]:
    """One pass (one statement, or one per slice of a big area's notices): totals; by the person's level,
    role, answer path and 5-second step of the answer; and each roll-up level.

    A roll-up level is grouped by (ancestor at that level, the person's own level), so one pass gives
    both a node's subtree (the sum of its rows) and the people attached to the node itself.
    """
    dialect = dialect_name(session)
    levels = q.ROLLUP_LEVELS[:q.ROLLUP_LEVELS.index(rollup) + 1] if rollup != "none" else ()
    # Only the area's own regions matter: a notice outside it is not counted, so neither is its depth.
    depths = await q.level_depths(session, levels, under=scoped.path or "/") if levels else None
    where = [q.N.c.warning_id == scoped.warning.id, q.N.c.reason == "primary"]

    def rows(ids: tuple[int, int] | None) -> Any:
        base = q.notice_rows(dialect=dialect, where=where, scope_path=scoped.path,
                             ack_deadline=ack_deadline_of(scoped.warning), warning_id=scoped.warning.id,
                             chain=bool(levels), depths=depths, ids=ids).subquery("b")
        # PostgreSQL rounds a cast to integer and SQLite truncates; both must mean "which step".
        step = func.floor(base.c.secs / FINE) if dialect == "postgresql" else base.c.secs / FINE
        return select(base, cast(step, Integer).label("step"))

    dims: dict[str, tuple[str, ...]] = {"all": (), "level": ("level0",), "role": ("role",),
                                        "ack_path": ("ack_path",), "step": ("step",)}
    dims.update({lvl: (f"at_{lvl}", "level0") for lvl in levels})
    out: dict[str, dict[Any, Any]] = {"all": {"": Counts()}, **{d: {} for d in dims if d != "all"}}
    subtree: dict[str, dict[str, list[int]]] = {lvl: {} for lvl in levels}
    own: dict[str, dict[str, tuple[int, ...]]] = {lvl: {} for lvl in levels}
    for dim, key, values in await q.sliced_grouped_counts(session, rows, dims, warning_id=scoped.warning.id,
                                                              scope_path=scoped.path):
        if dim in levels:
            code, person_level = key
            if code is None:
                continue  # people attached above this level
            acc = subtree[dim].setdefault(code, [0] * len(values))
            for i, v in enumerate(values):
                acc[i] += v or 0
            if person_level == dim:
                own[dim][code] = values
        elif dim == "step":
            if key[0] is not None:
                out[dim][key[0]] = Counts.from_values(values)
        else:
            out[dim][key[0] if key else ""] = Counts.from_values(values)
    out["ack_path"].pop(None, None)
    for lvl in levels:
        mine = own[lvl]
        out[lvl] = {code: (Counts.from_values(acc), Counts.from_values(mine[code]) if code in mine else Counts())
                    for code, acc in subtree[lvl].items()}
    return out


async def _rollup(session: AsyncSession, *, grouped: dict[str, Any], totals: Counts, scope: Region) -> Rollup:
    """Nodes county → … → `rollup`, each with its subtree's counts and those of people attached to it.

    Every node's subtree = its own + the sum of its children's subtrees, and the totals = the sum of
    the top level + `above` (people attached above the top level, e.g. the city's own officials).
    """
    levels = [lvl for lvl in q.ROLLUP_LEVELS if lvl in grouped]
    cols = (Region.code, Region.name, Region.parent_code, Region.path)
    info: dict[str, NodeRegion] = {}
    if levels:
        # One range scan of the scope's regions of these levels beats a long IN list; in pages by path, so
        # that a province's ~130,000 regions are not one statement of a third of a second.
        after: str | None = None
        while True:
            stmt = select(*cols).where(Region.level.in_(levels), Region.path >= scope.path,
                                       Region.path < scope.path + "\x7f")
            if after is not None:
                stmt = stmt.where(Region.path > after)
            page = (await session.execute(stmt.order_by(Region.path).limit(q.SLICE_ROWS))).all()
            for code, name, parent, path in page:
                info[code] = NodeRegion(name, parent, path)
            if len(page) < q.SLICE_ROWS:
                break
            after = page[-1].path
    # … and the few nodes above the scope (its own county, seen from a town) are looked up by code.
    above = [code for lvl in levels for code in grouped[lvl] if code not in info]
    for batch in chunks(above, 2000):
        for code, name, parent, path in (await session.execute(select(*cols).where(Region.code.in_(batch)))).all():
            info[code] = NodeRegion(name, parent, path)
    entries = []
    for lvl in levels:
        for code in grouped[lvl]:
            r = info.get(code)
            entries.append((r.path if r else "", lvl, code))
    # Stable: nodes of one path keep the order of the levels, as they were built.
    entries.sort(key=lambda e: e[0])
    above_counts = totals
    if levels:
        top = Counts()
        for sub, _own in grouped[levels[0]].values():
            top = top.add(sub)
        above_counts = _subtract(totals, top)
    return Rollup(levels=levels, above=above_counts, entries=entries, grouped=grouped, info=info)


def _subtract(a: Counts, b: Counts) -> Counts:
    neg = Counts(**{k: -v for k, v in b.as_dict().items() if k not in ("rate", "on_time_rate")})
    return a.add(neg)


async def _timing(session: AsyncSession, *, scoped: Scoped, steps: dict[int, Counts]) -> dict[str, Any]:
    """Time to answer (p50/p90/max) and the cumulative answers over time against the deadline."""
    dialect = dialect_name(session)
    deadline = ack_deadline_of(scoped.warning)
    where = [q.N.c.warning_id == scoped.warning.id, q.N.c.reason == "primary", q.N.c.requires_ack.is_(True)]
    answered = q.notice_rows(dialect=dialect, where=where, scope_path=scoped.path, ack_deadline=deadline,
                             region=False).subquery("answered")
    pct = await q.percentiles(session, select(answered.c.secs.label("secs")).where(answered.c.acked),
                              dialect=dialect)
    span = max(pct["max"] or 0.0, (deadline or 0.0) * 1.25, 60.0)
    bucket = next((b for b in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
                   if span / b <= 120), 86400)
    by_k: dict[int, tuple[int, int]] = {}
    for step, counts in steps.items():
        # Clocks a little apart can put an answer before the call; it counts at zero.
        k = max(step, 0) * FINE // bucket
        n, late = by_k.get(k, (0, 0))
        by_k[k] = (n + counts.acknowledged, late + counts.late)
    points = [{"t": 0, "acknowledged": 0, "late": 0}]
    cum = cum_late = 0
    for k in range(0, max(max(by_k, default=0) + 1, int(span // bucket) + 1)):
        n, late = by_k.get(k, (0, 0))
        cum, cum_late = cum + n, cum_late + late
        points.append({"t": (k + 1) * bucket, "acknowledged": cum, "late": cum_late})
    return {"percentiles": pct, "timeline": {"bucket_seconds": bucket, "deadline_seconds": deadline,
                                             "points": points}}


async def _channels(session: AsyncSession, *, scoped: Scoped) -> list[dict[str, Any]]:
    """Messages per channel (from the outbox), by status and by kind; loudspeakers count per village."""
    cols = (OB.c.channel, OB.c.kind, OB.c.status, func.count(), func.coalesce(func.sum(OB.c.attempts), 0))
    group = (OB.c.channel, OB.c.kind, OB.c.status)
    if scoped.path is None:
        stmts = [select(*cols).where(OB.c.warning_id == scoped.warning.id).group_by(*group)]
    else:
        # Part of a warning: from its notices in the area to their messages (by index), and the
        # loudspeakers of the area's villages.
        low, high = scoped.path, scoped.path + "\x7f"
        r = R.alias("r")
        people = (q.N.join(r, r.c.code == q.N.c.region_code).join(OB, OB.c.notice_id == q.N.c.id))
        stmts = [
            select(*cols).select_from(people).where(q.N.c.warning_id == scoped.warning.id, r.c.path >= low,
                                                    r.c.path < high).group_by(*group),
            select(*cols).select_from(OB.join(r, r.c.code == OB.c.region_code)).where(
                OB.c.warning_id == scoped.warning.id, OB.c.notice_id.is_(None), r.c.path >= low,
                r.c.path < high).group_by(*group),
        ]
    rows = [row for stmt in stmts for row in (await session.execute(stmt)).all()]
    out: dict[str, dict[str, Any]] = {}
    for channel, kind, status, n, attempts in rows:
        ch = out.setdefault(channel, {"channel": channel, "messages": 0, "attempts": 0,
                                      "by_status": {s: 0 for s in STATUS_RANK},
                                      "by_kind": {}})
        ch["messages"] += n
        ch["attempts"] += int(attempts)
        ch["by_status"][status] = ch["by_status"].get(status, 0) + n
        ch["by_kind"][kind] = ch["by_kind"].get(kind, 0) + n
    for ch in out.values():
        st = ch["by_status"]
        live = ch["messages"] - st.get("cancelled", 0)
        ch["carried"] = st.get("sent", 0) + st.get("delivered", 0)
        ch["carried_rate"] = q.rate(ch["carried"], live)
        ch["delivered_rate"] = q.rate(st.get("delivered", 0), live)
    return sorted(out.values(), key=lambda c: c["channel"])


async def _escalations(session: AsyncSession, *, scoped: Scoped) -> dict[str, Any]:
    """How many deputies (B posts) and levels above were called, and how many of them answered."""
    c = q.notice_rows(dialect=dialect_name(session), where=[q.N.c.warning_id == scoped.warning.id,
                                                            q.N.c.reason.in_(("deputy", "escalation"))],
                      scope_path=scoped.path, ack_deadline=None, extra=[q.N.c.root_id],
                      region=False).subquery("e")
    rows = (await session.execute(select(
        c.c.reason, func.count(), func.count().filter(c.c.acked),
        func.count().filter(and_(c.c.acked, c.c.late)),
        func.count().filter(and_(c.c.acked, c.c.ack_path == "proxy")), func.count(c.c.root_id.distinct()),
    ).group_by(c.c.reason))).all()
    empty = {"fired": 0, "answered": 0, "late": 0, "proxy": 0, "chains": 0, "rate": None}
    out: dict[str, Any] = {reason: dict(empty) for reason in ("deputy", "escalation")}
    for reason, fired, answered, late, proxy, chains in rows:
        out[reason] = {"fired": fired, "answered": answered, "late": late, "proxy": proxy, "chains": chains,
                       "rate": q.rate(answered, fired)}
    fired = sum(v["fired"] for v in out.values())
    answered = sum(v["answered"] for v in out.values())
    return {**out, "fired": fired, "answered": answered, "rate": q.rate(answered, fired)}
