"""Per-notice lists: who is missing (paged), and every notice of a warning for the exports (streamed).

Lists are fetched a page at a time; what each row needs from the outbox (messages, attempts, the last
delivery status) and the names along its region path are looked up for that page's ids only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, and_, any_, func, literal, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service import labels
from warning_service.auth.models import User
from warning_service.dialect import chunks
from warning_service.dialect import name as dialect_name
from warning_service.notice.models import NOTICE_STATE_ZH
from warning_service.person.models import ROLE_ZH, Person
from warning_service.region.models import Region
from warning_service.report import feedback as fb
from warning_service.report import queries as q
from warning_service.report.queries import OB
from warning_service.report.scope import Scoped, ack_deadline_of

P = Person.__table__
U = User.__table__
STATUS_ZH = labels.OUTBOX_STATUS
CHANNEL_ZH = labels.CHANNEL
ACK_PATH_ZH = labels.ACK_PATH


def _rows(session: AsyncSession, scoped: Scoped) -> Any:
    where = [q.N.c.warning_id == scoped.warning.id, q.N.c.reason == "primary"]
    return q.notice_rows(dialect=dialect_name(session), where=where, scope_path=scoped.path,
                         ack_deadline=ack_deadline_of(scoped.warning),
                         extra=[q.N.c.person_id, q.N.c.deadline, q.N.c.delivered_at, q.A.c.acknowledged_at,
                                q.A.c.proxy_method, q.A.c.note.label("ack_note"), q.A.c.actor_user_id,
                                q.N.c.created_at.label("called_at")]).subquery("n")


def _with_person(n: Any) -> Any:
    """The notice rows with the person's name and phone, the answer's acting user and the feedback."""
    return (select(n, P.c.name, P.c.phone, U.c.username.label("actor"), *fb.notice_feedback_columns())
            .join(P, P.c.id == n.c.person_id).outerjoin(U, U.c.id == n.c.actor_user_id)
            .outerjoin(fb.F, fb.F.c.notice_id == n.c.id))


async def missing_page(session: AsyncSession, *, scoped: Scoped, now: datetime, offset: int = 0,
                       limit: int = 50, total: int | None = None) -> tuple[int, list[dict[str, Any]]]:
    """Primary notices that required an answer and have none, by region path: (total, one page).

    `total` is counted unless the caller already knows it (the report's `never`, same definition).
    """
    n = _rows(session, scoped)
    silent = and_(n.c.req, ~n.c.acked)
    if total is None:
        total = (await session.execute(select(func.count()).select_from(n).where(silent))).scalar_one()
    if limit == 0 or total == 0:
        return total, []
    order = (n.c.path0, n.c.role, P.c.name, n.c.id)
    stmt = _with_person(n).where(silent).order_by(*order).offset(offset).limit(limit)
    rows = (await session.execute(stmt)).mappings().all()
    return total, await _describe(session, rows, paths=_PathNames(), scoped=scoped, now=now)


async def iter_notices(session: AsyncSession, *, scoped: Scoped, now: datetime, only_missing: bool = False,
                       page: int = 5000
                       ) -> AsyncIterator[list[dict[str, Any]]]:
    """Every primary notice in scope, by region path, `page` at a time (keyset, so a page costs the same)."""
    n = _rows(session, scoped)
    paths = _PathNames()
    after: tuple[str, int] | None = None
    while True:
        stmt = _with_person(n)
        if only_missing:
            stmt = stmt.where(n.c.req, ~n.c.acked)
        if after:
            stmt = stmt.where(or_(n.c.path0 > after[0], and_(n.c.path0 == after[0], n.c.id > after[1])))
        rows = (await session.execute(stmt.order_by(n.c.path0, n.c.id).limit(page))).mappings().all()
        if not rows:
            return
        yield await _describe(session, rows, paths=paths, scoped=scoped, now=now)
        if len(rows) < page:
            return
        after = (rows[-1]["path0"], rows[-1]["id"])


class _PathNames:
    """Region paths as names ("浙江省/杭州市/…"). A parent path is named once and shared by its children:
    a page of notices sits under a few hundred villages, so most rows only add their own region's name."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # region code → name, filled from the database
        self._parents: dict[str, str] = {}  # parent path → its names joined

    def unnamed(self, paths: Iterable[str]) -> set[str]:
        """The codes along these paths whose names are not known yet."""
        codes: set[str] = set()
        seen = set(self._parents)
        for path in paths:
            parent, _, code = path.rstrip("/").rpartition("/")
            codes.add(code)
            if parent not in seen:
                seen.add(parent)
                codes.update(parent.strip("/").split("/"))
        return {c for c in codes if c not in self.names}

    def label(self, path: str) -> str:
        """The names along `path` (a code stands for a region with no name), joined by "/"."""
        names = self.names
        parent, _, code = path.rstrip("/").rpartition("/")
        head = self._parents.get(parent)
        if head is None:
            head = self._parents[parent] = "/".join(names.get(c, c) for c in parent.strip("/").split("/"))
        name = names.get(code, code)
        return f"{head}/{name}" if head else name


# Rows are read as mappings: r["name"] costs a quarter of a Row's r.name, and a row has ~40 of them.
async def _describe(session: AsyncSession, rows: Sequence[RowMapping], *, paths: _PathNames, scoped: Scoped,
                    now: datetime) -> list[dict[str, Any]]:
    deadline = fb.feedback_deadline_of(scoped.warning)
    ids = [r["id"] for r in rows]
    pg = dialect_name(session) == "postgresql"
    outbox = await _outbox_by_notice(session, ids, pg=pg)
    chains = await _escalations_by_root(session, ids, pg=pg)
    await _fill_names(session, paths.unnamed(r["path0"] for r in rows), paths.names, pg=pg)
    label = paths.label
    out = []
    for r in rows:
        ob = outbox.get(r["id"], {})
        esc = chains.get(r["id"], (0, 0, []))
        answered = bool(r["acked"])
        out.append({
            "notice_id": r["id"], "person_id": r["person_id"], "name": r["name"], "phone": r["phone"],
            "role": r["role"], "role_zh": ROLE_ZH.get(r["role"], r["role"]), "region_code": r["code0"],
            "region_path": label(r["path0"]),
            "state": r["state"], "state_zh": NOTICE_STATE_ZH.get(r["state"], r["state"]),
            "requires_ack": bool(r["req"]), "acknowledged": answered,
            "acknowledged_at": r["acknowledged_at"] if answered else None,
            "seconds_to_ack": round(float(r["secs"]), 1) if answered and r["secs"] is not None else None,
            "late": bool(r["late"]) if answered else None, "ack_path": r["ack_path"] if answered else None,
            "proxy_method": r["proxy_method"] if answered else None,
            "deadline": r["deadline"], "delivered_at": r["delivered_at"],
            "messages": ob.get("messages", 0), "attempts": ob.get("attempts", 0),
            "last_channel": ob.get("channel"), "last_status": ob.get("status"), "last_error": ob.get("error"),
            "last_at": ob.get("at"), "escalations": esc[0], "escalations_answered": esc[1],
            "escalated_to": esc[2],
            "proxy_method_zh": labels.zh(labels.PROXY_METHOD, r["proxy_method"]) if answered else "",
            "ack_note": r["ack_note"] if answered else None, "ack_actor": r["actor"] if answered else None,
            "called_at": r["called_at"], "feedback_given": r["fb_at"] is not None, "feedback_at": r["fb_at"],
            "at_post": r["fb_at_post"], "villages_affected": r["fb_villages"], "people_evacuated": r["fb_evacuated"],
            "feedback_note": r["fb_note"],
            "feedback_deadline": fb.feedback_deadline_state(given_at=r["fb_at"], called_at=r["called_at"],
                                                            acknowledged=answered and bool(r["req"]),
                                                            deadline=deadline, now=now),
        })
    return out


def _among(col: Any, values: list[Any], *, pg: bool) -> Any:
    """`col IN values`: one array parameter on PostgreSQL (thousands of bound parameters cost more to
    compile than to run), a plain IN list on SQLite."""
    if pg:
        return col == any_(literal(values, ARRAY(col.type)))
    return col.in_(values)


async def _outbox_by_notice(session: AsyncSession, ids: list[int], *, pg: bool) -> dict[int, dict[str, Any]]:
    """Messages, attempts and the latest message's channel and status, for these notices: one row per
    notice from one scan (the counts are windows over the same partition as the ranking)."""
    out: dict[int, dict[str, Any]] = {}
    for batch in chunks(ids, 5000 if pg else 500):
        ranked = select(OB.c.notice_id, OB.c.channel, OB.c.status, OB.c.error_code, OB.c.updated_at,
                        func.count().over(partition_by=OB.c.notice_id).label("messages"),
                        func.coalesce(func.sum(OB.c.attempts).over(partition_by=OB.c.notice_id), 0)
                        .label("attempts"),
                        func.row_number().over(partition_by=OB.c.notice_id,
                                               order_by=(OB.c.updated_at.desc(), OB.c.id.desc())).label("rn")
                        ).where(_among(OB.c.notice_id, batch, pg=pg)).subquery("ranked")
        for nid, channel, status, error, at, messages, attempts, _rn in (await session.execute(
                select(ranked).where(ranked.c.rn == 1))).all():
            out[nid] = {"messages": int(messages), "attempts": int(attempts), "channel": channel,
                        "status": status, "error": error, "at": at}
    return out


async def _escalations_by_root(session: AsyncSession, ids: list[int], *, pg: bool
                               ) -> dict[int, tuple[int, int, list[dict[str, Any]]]]:
    """For each primary notice: deputies and levels above called about it, how many answered (were
    informed), and who they are — listed under the silent person, not as missing rows of their own."""
    out: dict[int, tuple[int, int, list[dict[str, Any]]]] = {}
    for batch in chunks(ids, 5000 if pg else 500):
        for root, name, role, reason, state in (await session.execute(
                select(q.N.c.root_id, P.c.name, q.N.c.role, q.N.c.reason, q.N.c.state)
                .join(P, P.c.id == q.N.c.person_id)
                .where(_among(q.N.c.root_id, batch, pg=pg), q.N.c.reason != "primary")
                .order_by(q.N.c.root_id, q.N.c.id))).all():
            fired, answered, told = out.get(root, (0, 0, []))
            told.append({"name": name, "role_zh": ROLE_ZH.get(role, role), "reason": reason,
                         "state_zh": NOTICE_STATE_ZH.get(state, state)})
            out[root] = (fired + 1, answered + (state == "acknowledged"), told)
    return out


async def _fill_names(session: AsyncSession, codes: set[str], names: dict[str, str], *, pg: bool) -> None:
    wanted = sorted(c for c in codes if c not in names)
    for batch in chunks(wanted, 5000 if pg else 500):
        for code, name in (await session.execute(select(Region.code, Region.name)
                                                 .where(_among(Region.code, batch, pg=pg)))).all():
            names[code] = name
