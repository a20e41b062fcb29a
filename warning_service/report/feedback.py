"""What happened after the answer, as report data: 响应反馈 by region, proxy answers by method with their
notes, and the warning's updates and lift with their reasons.

Feedback is expected from everyone who answered (it can only be given after an answer). Its deadline
runs from the call (the notice's creation): DOMAIN practice in Zhejiang is the town's feedback within
15 minutes, so the default is 900 s, and a policy may set `feedback_deadline` (seconds) for its warnings.
Every figure is one grouped statement; Python only names and orders the groups.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service import labels
from warning_service.acknowledgment.models import Feedback
from warning_service.auth.models import User
from warning_service.db import UTCDateTime
from warning_service.dialect import chunks
from warning_service.dialect import name as dialect_name
from warning_service.early_warning.models import EarlyWarning, WarningRevision
from warning_service.person.models import Person
from warning_service.region.models import Region
from warning_service.report import queries as q
from warning_service.report.scope import Scoped, ack_deadline_of

F = Feedback.__table__
P = Person.__table__
U = User.__table__
REV = WarningRevision.__table__
DEFAULT_FEEDBACK_DEADLINE = 900.0  # seconds: the town's feedback within 15 minutes (Luqiao practice)
# The level whose sums a report lists, one below the area looked at.
LEVEL_BELOW = {"province": "town", "city": "town", "county": "town", "town": "village", "village": "grid",
               "grid": "grid"}
FEEDBACK_KEYS = ("answered", "expected", "given", "missing", "on_time", "late", "missed", "open", "at_post",
                 "villages_affected", "people_evacuated")


def feedback_deadline_of(warning: EarlyWarning) -> float:
    value = (warning.policy or {}).get("feedback_deadline")
    return float(value) if value else DEFAULT_FEEDBACK_DEADLINE


def _feedback_rows(session: AsyncSession, scoped: Scoped, *, depths: dict[str, int] | None) -> Any:
    """One row per primary notice of the scope with its answer, its ancestors and its feedback."""
    base = q.notice_rows(dialect=dialect_name(session),
                         where=[q.N.c.warning_id == scoped.warning.id, q.N.c.reason == "primary"],
                         scope_path=scoped.path, ack_deadline=ack_deadline_of(scoped.warning), chain=True,
                         depths=depths, extra=[q.N.c.created_at.label("called_at")]).subquery("fb")
    return base


def _aggregates(base: Any, *, deadline: float, now: datetime, dialect: str) -> list[Any]:
    given = F.c.id.is_not(None)
    expected = and_(base.c.req, base.c.acked) | given
    took = q.seconds_between(F.c.created_at, base.c.called_at, dialect)
    overdue = base.c.called_at < bindparam("fb_cutoff", now - timedelta(seconds=deadline), type_=UTCDateTime())
    missing = and_(expected, ~given)
    return [
        func.count().filter(and_(base.c.req, base.c.acked)).label("answered"),
        func.count().filter(expected).label("expected"),
        func.count().filter(given).label("given"),
        func.count().filter(missing).label("missing"),
        func.count().filter(and_(given, took <= deadline)).label("on_time"),
        func.count().filter(and_(given, took > deadline)).label("late"),
        func.count().filter(and_(missing, overdue)).label("missed"),
        func.count().filter(and_(missing, ~overdue)).label("open"),
        func.count().filter(F.c.at_post.is_(True)).label("at_post"),
        func.coalesce(func.sum(F.c.villages_affected), 0).label("villages_affected"),
        func.coalesce(func.sum(F.c.people_evacuated), 0).label("people_evacuated"),
    ]


def _with_rates(d: dict[str, Any]) -> dict[str, Any]:
    d["rate"] = q.rate(d["given"], d["expected"])
    d["on_time_rate"] = q.rate(d["on_time"], d["expected"])
    return d


async def feedback_summary(session: AsyncSession, *, scoped: Scoped, now: datetime, level: str | None = None
                           ) -> dict[str, Any]:
    """已反馈/未反馈, deadline met or missed, at post, villages affected and people evacuated: in total and
    per region of `level` (default: one below the area), the most evacuated first."""
    level = level or LEVEL_BELOW.get(scoped.region.level, "town")
    deadline = feedback_deadline_of(scoped.warning)
    dialect = dialect_name(session)
    depths = await q.level_depths(session, (level,), under=scoped.path or "/")
    base = _feedback_rows(session, scoped, depths=depths)
    at = base.c[f"at_{level}"]
    stmt = (select(at.label("code"), *_aggregates(base, deadline=deadline, now=now, dialect=dialect))
            .select_from(base.outerjoin(F, F.c.notice_id == base.c.id)).group_by(at))
    groups = (await session.execute(stmt)).all()
    totals = dict.fromkeys(FEEDBACK_KEYS, 0)
    rows = []
    for g in groups:
        values = {k: int(getattr(g, k) or 0) for k in FEEDBACK_KEYS}
        for k in FEEDBACK_KEYS:
            totals[k] += values[k]
        if g.code is not None:
            rows.append({"code": g.code, **_with_rates(values)})
    names = await _names(session, [r["code"] for r in rows])
    for r in rows:
        r["name"], r["path"] = names.get(r["code"], (r["code"], ""))
    # Worst hit first: the most people moved, then the most villages affected, then the most silent.
    rows.sort(key=lambda r: (-r["people_evacuated"], -r["villages_affected"], -r["missing"], r["path"]))
    return {"deadline_seconds": deadline, "level": level, "level_zh": labels.zh(labels.REGION_LEVEL, level),
            "totals": _with_rates(totals), "by_region": rows}


async def _names(session: AsyncSession, codes: list[str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for batch in chunks(sorted(set(codes)), 2000):
        for code, name, path in (await session.execute(
                select(Region.code, Region.name, Region.path).where(Region.code.in_(batch)))).all():
            out[code] = (name, path)
    return out


def _proxy_base(scoped: Scoped) -> tuple[Any, list[Any], Any]:
    """Proxy answers (代叫应) that count in the report: primary notices of the scope, current round."""
    r0 = q.R.alias("pr")
    frm = (q.A.join(q.N, and_(q.N.c.id == q.A.c.notice_id, q.N.c.round == q.A.c.round))
           .join(r0, r0.c.code == q.N.c.region_code))
    where = [q.A.c.warning_id == scoped.warning.id, q.A.c.path == "proxy", q.N.c.reason == "primary",
             q.N.c.state == "acknowledged"]
    if scoped.path is not None:
        where += [r0.c.path >= scoped.path, r0.c.path < scoped.path + "\x7f"]
    return frm, where, r0


async def proxy_answers(session: AsyncSession, *, scoped: Scoped, offset: int = 0, limit: int = 50
                        ) -> dict[str, Any]:
    """Proxy answers by method (counts) and a page of them with who confirmed, how, when and the note."""
    frm, where, _r0 = _proxy_base(scoped)
    by_method = (await session.execute(select(q.A.c.proxy_method, func.count()).select_from(frm).where(*where)
                                       .group_by(q.A.c.proxy_method))).all()
    counts = [{"method": m, "method_zh": labels.zh(labels.PROXY_METHOD, m) or "未注明", "count": int(n)}
              for m, n in by_method]
    counts.sort(key=lambda x: -x["count"])
    total = sum(c["count"] for c in counts)
    items: list[dict[str, Any]] = []
    if limit and total:
        items = [r async for page in iter_proxy(session, scoped=scoped, offset=offset, limit=limit)
                 for r in page]
    return {"total": total, "by_method": counts, "offset": offset, "limit": limit, "items": items}


async def iter_proxy(session: AsyncSession, *, scoped: Scoped, offset: int = 0, limit: int | None = None,
                     page: int = 2000) -> Any:
    """Proxy answers in region order, `page` at a time (keyset after the first page)."""
    frm, where, r0 = _proxy_base(scoped)
    stmt = (select(q.A.c.notice_id, q.A.c.proxy_method, q.A.c.note, q.A.c.acknowledged_at, q.A.c.late,
                   q.N.c.role, q.N.c.region_code, r0.c.name.label("region_name"), r0.c.path,
                   P.c.name, P.c.phone, U.c.username.label("actor"))
            .select_from(frm.join(P, P.c.id == q.N.c.person_id).outerjoin(U, U.c.id == q.A.c.actor_user_id))
            .where(*where).order_by(r0.c.path, q.A.c.notice_id))
    left = limit
    skip = offset
    after: tuple[str, int] | None = None
    while left is None or left > 0:
        size = page if left is None else min(page, left)
        s = stmt
        if after is not None:
            s = s.where((r0.c.path > after[0]) | and_(r0.c.path == after[0], q.A.c.notice_id > after[1]))
        elif skip:
            s = s.offset(skip)
        rows = (await session.execute(s.limit(size))).all()
        if not rows:
            return
        yield [{"notice_id": r.notice_id, "name": r.name, "phone": r.phone, "role": r.role,
                "role_zh": labels.zh(labels.ROLE, r.role), "region_code": r.region_code,
                "region_name": r.region_name, "method": r.proxy_method,
                "method_zh": labels.zh(labels.PROXY_METHOD, r.proxy_method) or "未注明", "note": r.note,
                "actor": r.actor, "acknowledged_at": r.acknowledged_at, "late": bool(r.late)} for r in rows]
        if len(rows) < size:
            return
        after = (rows[-1].path, rows[-1].notice_id)
        if left is not None:
            left -= len(rows)


async def history(session: AsyncSession, *, warning: EarlyWarning) -> list[dict[str, Any]]:
    """Each CAP message of the warning — issue, updates, lift — with who sent it and why: what changed
    (level, area, validity, text) and, for an update or lift, the text it carried as its reason."""
    rows = (await session.execute(
        select(REV.c.revision, REV.c.msg_type, REV.c.identifier, REV.c.sent_at, REV.c.level, REV.c.title,
               REV.c.description, REV.c.targets, REV.c.area_desc, REV.c.expires_at, U.c.username)
        .select_from(REV.outerjoin(U, U.c.id == REV.c.actor_user_id))
        .where(REV.c.warning_id == warning.id).order_by(REV.c.revision))).all()
    out: list[dict[str, Any]] = []
    prev: Any = None
    for r in rows:
        changes: list[str] = []
        if prev is not None:
            if r.level != prev.level:
                changes.append(f"级别 {labels.zh(labels.WARNING_LEVEL, prev.level)}→"
                               f"{labels.zh(labels.WARNING_LEVEL, r.level)}")
            if sorted(r.targets or []) != sorted(prev.targets or []):
                changes.append(f"范围 {prev.area_desc}→{r.area_desc}")
            if r.expires_at != prev.expires_at:
                changes.append("失效时间")
            if r.title != prev.title:
                changes.append("标题")
            if r.description != prev.description:
                changes.append("内容")
        reason = r.description if prev is not None and r.description != prev.description else None
        out.append({"revision": r.revision, "msg_type": r.msg_type,
                    "msg_type_zh": labels.zh(labels.MSG_TYPE, r.msg_type), "identifier": r.identifier,
                    "sent_at": r.sent_at, "actor": r.username, "level": r.level,
                    "level_zh": labels.zh(labels.WARNING_LEVEL, r.level), "changes": changes, "reason": reason})
        prev = r
    return out


def notice_feedback_columns() -> list[Any]:
    """Columns a per-notice listing adds from the feedback table (outer-joined on `F.c.notice_id`)."""
    return [F.c.at_post.label("fb_at_post"), F.c.villages_affected.label("fb_villages"),
            F.c.people_evacuated.label("fb_evacuated"), F.c.note.label("fb_note"),
            F.c.created_at.label("fb_at")]


def feedback_deadline_state(*, given_at: datetime | None, called_at: datetime | None, acknowledged: bool,
                            deadline: float, now: datetime) -> str | None:
    """met | late | missed | open for one notice (None when no feedback is expected of it)."""
    if called_at is None or (given_at is None and not acknowledged):
        return None
    due = called_at + timedelta(seconds=deadline)
    if given_at is not None:
        return "met" if given_at <= due else "late"
    return "missed" if now > due else "open"

