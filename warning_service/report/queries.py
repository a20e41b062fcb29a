"""SQL building blocks shared by the reports: one row per notice with its answer, and the counts over it.

Everything here is an expression for the database to aggregate; Python only ever sees group totals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    extract,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.sql import ColumnElement

from warning_service.acknowledgment.models import Acknowledgment
from warning_service.delivery.models import OutboxMessage
from warning_service.dialect import is_postgresql
from warning_service.notice.models import Notice
from warning_service.region.models import Region

N = Notice.__table__
A = Acknowledgment.__table__
R = Region.__table__
OB = OutboxMessage.__table__

OPEN_STATES = ("pending", "delivered")
# How far above a notice's own region each roll-up level can sit (grid → village → town → county).
ROLLUP_LEVELS = ("county", "town", "village", "grid")
HOPS = 3
# A message has left us once a carrier took it; an answer proves it arrived whatever the receipts say.
CARRIED = ("sent", "delivered")


def seconds_between(later: Any, earlier: Any, dialect: str) -> ColumnElement[float]:
    if dialect == "postgresql":
        return extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def notice_rows(*, dialect: str, where: list[Any], scope_path: str | None, ack_deadline: float | None,
                warning_id: int | None = None, chain: bool = False, depths: dict[str, int] | None = None,
                extra: list[Any] | None = None, region: bool = True,
                ids: tuple[int, int] | None = None) -> Select[Any]:
    """One row per notice: whether an answer is required and given, how, how late, how fast, where.

    An answer counts when the notice is acknowledged *and* has an acknowledgment for its current round
    (an upgrade starts a new round). `warning_id` adds whether a carrier took a message (one outbox scan
    for that warning); `chain` adds the notice region's ancestors for the roll-up — read off the region's
    path on PostgreSQL when `depths` says at which depth each level sits, else by walking up parents.
    `region=False` leaves out the region (code0, level0, path0) when no scope needs it. `ids` (low, high)
    keeps the notices with low <= id < high: one slice of a heavy read (`notice_slices`).
    """
    r0 = R.alias("r0")
    acked = and_(N.c.state == "acknowledged", A.c.id.is_not(None))
    # Time to answer runs from the call of the current round: issue for round 1, the upgrade for later
    # rounds (whose deadline was set afresh, ack_deadline after it).
    from_call = seconds_between(A.c.acknowledged_at, N.c.created_at, dialect)
    if ack_deadline:
        from_call = case((or_(N.c.round == 1, N.c.deadline.is_(None)), from_call),
                         else_=seconds_between(A.c.acknowledged_at, N.c.deadline, dialect) + ack_deadline)
    cols: list[Any] = [
        N.c.id, N.c.role, N.c.state, N.c.warning_id, N.c.reason,
        N.c.requires_ack.label("req"), acked.label("acked"), A.c.late.label("late"),
        A.c.path.label("ack_path"),
        (N.c.delivered_at.is_not(None)).label("dlv"), case((acked, from_call)).label("secs"),
    ]
    region = region or chain or scope_path is not None
    if region:
        cols += [r0.c.code.label("code0"), r0.c.level.label("level0"), r0.c.path.label("path0")]
    # The warning_id equality is implied, but lets PostgreSQL read only this warning's acknowledgments
    # instead of hashing the whole table.
    frm = (N.join(r0, r0.c.code == N.c.region_code) if region else N).outerjoin(
        A, and_(A.c.notice_id == N.c.id, A.c.round == N.c.round, A.c.warning_id == N.c.warning_id))
    if warning_id is not None and scope_path is None:
        # The whole warning: one pass over its outbox, hashed.
        carried = [OB.c.warning_id == warning_id, OB.c.status.in_(CARRIED), OB.c.notice_id.is_not(None)]
        if ids is not None:  # a slice: only its notices' messages (by the notice_id index), not the whole outbox
            carried += [OB.c.notice_id >= ids[0], OB.c.notice_id < ids[1]]
        sent = select(OB.c.notice_id).where(*carried).distinct().subquery("sent")
        frm = frm.outerjoin(sent, sent.c.notice_id == N.c.id)
        cols.append(sent.c.notice_id.is_not(None).label("carried"))
    elif warning_id is not None:
        # Part of it (a county of a province-wide warning): look up only those notices' messages.
        cols.append(exists().where(OB.c.notice_id == N.c.id, OB.c.status.in_(CARRIED)).label("carried"))
    else:
        cols.append(literal(False).label("carried"))
    if chain and depths is not None and dialect == "postgresql":
        for level, depth in depths.items():
            # "/33/3310/331081/331081001/": segment depth + 2 is the ancestor at that depth, "" if none.
            segment = func.split_part(r0.c.path, "/", depth + 2)
            cols.append(func.nullif(segment, "").label(f"at_{level}"))
    elif chain:
        hops = [r0]
        for i in range(1, HOPS + 1):
            ri = R.alias(f"r{i}")
            frm = frm.outerjoin(ri, ri.c.code == hops[-1].c.parent_code)
            hops.append(ri)
        for level in ROLLUP_LEVELS:
            cols.append(case(*[(h.c.level == level, h.c.code) for h in hops]).label(f"at_{level}"))
    cols += extra or []
    q = select(*cols).select_from(frm).where(*where)
    if ids is not None:
        q = q.where(N.c.id >= ids[0], N.c.id < ids[1])
    if scope_path is not None:
        q = q.where(r0.c.path >= scope_path, r0.c.path < scope_path + "\x7f")
    return q


async def level_depths(session: Any, levels: tuple[str, ...], *, under: str = "/"
                       ) -> dict[str, int] | None:
    """The depth of each of `levels` when every region of that level (under the path `under`) sits at the
    same depth, else None."""
    def query(wanted: list[str], *conds: Any) -> Any:
        return select(R.c.level, func.min(R.c.depth), func.max(R.c.depth)).where(
            R.c.level.in_(wanted), *conds).group_by(R.c.level)

    rows = (await session.execute(query(list(levels), R.c.path >= under, R.c.path < under + "\x7f"))).all()
    found = {level: (lo, hi) for level, lo, hi in rows}
    above = [level for level in levels if level not in found]  # the area's own county, seen from a town
    if above:
        found.update({level: (lo, hi) for level, lo, hi in (await session.execute(query(above))).all()})
    if any(lo != hi for lo, hi in found.values()):
        return None
    # A level with no regions yields no ancestors: an out-of-range segment is "" and so NULL.
    return {level: found.get(level, (99, 99))[0] for level in levels}


async def tune(session: Any) -> None:
    """Session settings for one report transaction on PostgreSQL.

    A report is a handful of aggregates over ~10^5 rows: JIT compilation costs more than it saves, and
    the default work_mem makes hash aggregates spill to disk.
    """
    if is_postgresql(session):
        await session.execute(text("SET LOCAL jit = off"))
        await session.execute(text("SET LOCAL work_mem = '32MB'"))


async def grouped_counts(session: Any, rows: Select[Any], dims: dict[str, tuple[str, ...]]
                         ) -> list[tuple[str, tuple[Any, ...], tuple[int, ...]]]:
    """`counts` over `rows` for each grouping in `dims` (name → columns; () is the total), in one statement.

    PostgreSQL computes every grouping in a single scan with GROUPING SETS; SQLite, which has none,
    materializes the rows once and reads them once per grouping (UNION ALL). Returns (name, key, values):
    the ten `counts` in COUNT_NAMES order, raw, for `Counts.from_values` once they are summed.
    """
    if is_postgresql(session):
        c = rows.subquery("c")
        cols = list(dict.fromkeys(col for group in dims.values() for col in group))
        keys = [c.c[col] for col in cols]
        sets = [tuple_(*[c.c[col] for col in group]) for group in dims.values()]
        # GROUPING(a, b, …) has bit i (from the left) set when column i is not grouped in that row's set.
        bits = {sum(1 << (len(cols) - 1 - i) for i, col in enumerate(cols) if col not in group): name
                for name, group in dims.items()}
        at = {name: [cols.index(col) + 1 for col in group] for name, group in dims.items()}
        stmt = select(func.grouping(*keys), *keys, *counts(c)).group_by(func.grouping_sets(*sets))
        first = 1 + len(cols)
        out = []
        for row in await session.execute(stmt):
            name = bits[row[0]]
            out.append((name, tuple(row[i] for i in at[name]), tuple(row[first:first + 10])))
        return out
    c = rows.cte("c").prefix_with("MATERIALIZED")
    width = max(len(group) for group in dims.values())
    branches = []
    for name, group in dims.items():
        keys = [cast(c.c[col], String).label(f"k{i}") for i, col in enumerate(group)]
        keys += [literal(None, String).label(f"k{i}") for i in range(len(group), width)]
        branches.append(select(literal(name).label("dim"), *keys, *counts(c))
                        .group_by(*[c.c[col] for col in group]))
    result = (await session.execute(union_all(*branches))).all()
    types = {col: rows.selected_columns[col].type for group in dims.values() for col in group}
    out = []
    for row in result:
        group = dims[row.dim]
        key = tuple(_back(getattr(row, f"k{i}"), types[col]) for i, col in enumerate(group))
        out.append((row.dim, key, tuple(getattr(row, k) for k in COUNT_NAMES)))
    return out


# Rows per statement when a heavy read is cut into slices (notices counted, regions read): ~0.1 s of one core.
# One statement over a province (~130,000 notices) held a core for 3–4 s, and link answers waiting on the WAL
# queued behind it (docs/notes/heavy.md); between slices the heavy-read lane (warning_service/lane.py) rests.
SLICE_ROWS = 8000


async def notice_slices(session: Any, *, warning_id: int, scope_path: str | None = None,
                        size: int | None = None) -> list[tuple[int, int] | None]:
    """Notice-id ranges [low, high) of about `size` of the warning's notices (under `scope_path`) each, in id
    order; `[None]` (one statement over everything) for a small area, and on SQLite, where each statement of a
    report reads the latest data (no snapshot to keep the slices' sums consistent) and no other process shares
    the CPU."""
    if not is_postgresql(session):
        return [None]
    stmt = select(func.min(N.c.id), func.max(N.c.id), func.count()).where(N.c.warning_id == warning_id)
    if scope_path is not None:
        stmt = stmt.join(R, R.c.code == N.c.region_code).where(R.c.path >= scope_path,
                                                               R.c.path < scope_path + "\x7f")
    low, high, n = (await session.execute(stmt)).one()
    size = size or SLICE_ROWS
    if n <= size:
        return [None]
    # Equal widths of id: a warning's notices are inserted in bulk, so their ids are close to dense.
    width = -(-(high - low + 1) // -(-n // size))
    return [(a, min(a + width, high + 1)) for a in range(low, high + 1, width)]


async def sliced_grouped_counts(session: Any, rows: Callable[[tuple[int, int] | None], Select[Any]],
                                dims: dict[str, tuple[str, ...]], *, warning_id: int,
                                scope_path: str | None = None) -> list[tuple[str, tuple[Any, ...], tuple[int, ...]]]:
    """`grouped_counts` over `rows(ids)` for each of the warning's `notice_slices`, summed (every count is
    additive), in one snapshot: the same answer as one statement, in statements of bounded length."""
    total: dict[tuple[str, tuple[Any, ...]], list[int]] = {}
    for ids in await notice_slices(session, warning_id=warning_id, scope_path=scope_path):
        for name, key, values in await grouped_counts(session, rows(ids), dims):
            acc = total.setdefault((name, key), [0] * len(values))
            for i, v in enumerate(values):
                acc[i] += v or 0
    return [(name, key, tuple(values)) for (name, key), values in total.items()]


def _back(value: Any, type_: Any) -> Any:
    """A key cast to text for the UNION, back to its own type (integers stay integers)."""
    if value is None:
        return None
    try:
        if type_.python_type is int:
            return int(value)
    except NotImplementedError:
        pass
    return value


COUNT_NAMES = ("recipients", "required", "reached", "delivered", "acknowledged", "late", "proxy", "waiting",
               "timed_out", "closed")


def counts(c: Any, *, within: Any = None, prefix: str = "") -> list[Any]:
    """Aggregate columns over a `notice_rows` subquery `c` (optionally only rows matching `within`)."""
    def n(cond: Any | None = None) -> Any:
        conds = [x for x in (cond, within) if x is not None]
        return func.count().filter(and_(*conds)) if conds else func.count()

    need = c.c.req
    answered = and_(need, c.c.acked)
    silent = and_(need, ~c.c.acked)
    return [
        n().label(prefix + "recipients"),
        n(need).label(prefix + "required"),
        n(or_(c.c.carried, c.c.acked)).label(prefix + "reached"),
        n(or_(c.c.dlv, c.c.acked)).label(prefix + "delivered"),
        n(answered).label(prefix + "acknowledged"),
        n(and_(answered, c.c.late)).label(prefix + "late"),
        n(and_(answered, c.c.ack_path == "proxy")).label(prefix + "proxy"),
        n(and_(silent, c.c.state.in_(OPEN_STATES))).label(prefix + "waiting"),
        n(and_(silent, c.c.state == "timed_out")).label(prefix + "timed_out"),
        n(and_(silent, c.c.state.not_in(OPEN_STATES + ("timed_out",)))).label(prefix + "closed"),
    ]


def rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


@dataclass(slots=True)  # a grid roll-up of a province holds ~2 × 10^5 of them
class Counts:
    """Primary notices of one group. `never` = required but not answered (waiting + timed_out + closed)."""

    recipients: int = 0  # people the warning was addressed to
    required: int = 0  # of whom an answer was required (the rate's denominator)
    reached: int = 0  # a carrier took at least one message, or they answered
    delivered: int = 0  # a delivery receipt came back, or they answered
    acknowledged: int = 0
    on_time: int = 0
    late: int = 0
    proxy: int = 0  # answered on their behalf by a duty officer (代叫应), on time or late
    never: int = 0
    waiting: int = 0  # still open: not answered yet, not timed out
    timed_out: int = 0
    closed: int = 0  # the warning ended before an answer
    rate: float | None = None  # 叫应率 = acknowledged ÷ required
    on_time_rate: float | None = None

    @classmethod
    def from_row(cls, row: Any, prefix: str = "") -> Counts:
        return cls.from_values([getattr(row, prefix + k) for k in COUNT_NAMES])

    @classmethod
    def from_values(cls, values: Any) -> Counts:
        """From the ten `counts` columns, in COUNT_NAMES order."""
        recipients, required, reached, delivered, acknowledged, late, proxy, waiting, timed_out, closed = (
            int(v or 0) for v in values)
        return cls(recipients, required, reached, delivered, acknowledged, acknowledged - late, late, proxy,
                   required - acknowledged, waiting, timed_out, closed, rate(acknowledged, required),
                   rate(acknowledged - late, required))

    def add(self, other: Counts) -> Counts:
        v = [getattr(self, k) + getattr(other, k) for k in _SUMMED]
        acknowledged, on_time, required = v[4], v[5], v[1]
        return Counts(*v, rate(acknowledged, required), rate(on_time, required))

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _ALL}


_ALL = [f.name for f in fields(Counts)]
_SUMMED = [k for k in _ALL if k not in ("rate", "on_time_rate")]


async def percentiles(session: Any, secs_q: Select[Any], *, dialect: str) -> dict[str, float | int | None]:
    """count, p50, p90 and max of the `secs` column, computed by the database.

    PostgreSQL has percentile_cont; SQLite numbers the ordered durations with a window function and
    returns only the (at most five) rows around each percentile, interpolated here the same way.
    """
    d = secs_q.subquery("d")
    if dialect == "postgresql":
        row = (await session.execute(select(
            func.count(d.c.secs), func.percentile_cont(0.5).within_group(d.c.secs),
            func.percentile_cont(0.9).within_group(d.c.secs), func.max(d.c.secs)).where(d.c.secs.is_not(None))
        )).one()
        n, p50, p90, mx = row
        return {"count": int(n), "p50": _r(p50), "p90": _r(p90), "max": _r(mx)}
    o = select(d.c.secs, (func.row_number().over(order_by=d.c.secs) - 1).label("i"),
               func.count().over().label("n")).where(d.c.secs.is_not(None)).subquery("o")
    pos = {p: cast((o.c.n - 1) * p, Integer) for p in (0.5, 0.9)}
    wanted = or_(o.c.i == pos[0.5], o.c.i == pos[0.5] + 1, o.c.i == pos[0.9], o.c.i == pos[0.9] + 1,
                 o.c.i == o.c.n - 1)
    rows = (await session.execute(select(o.c.i, o.c.n, o.c.secs).where(wanted))).all()
    if not rows:
        return {"count": 0, "p50": None, "p90": None, "max": None}
    n = int(rows[0].n)
    at = {int(r.i): float(r.secs) for r in rows}

    def cont(p: float) -> float:
        k = (n - 1) * p
        lo = int(k)
        hi = min(lo + 1, n - 1)
        return at[lo] + (k - lo) * (at[hi] - at[lo])

    return {"count": n, "p50": _r(cont(0.5)), "p90": _r(cont(0.9)), "max": _r(at[n - 1])}


def _r(v: Any) -> float | None:
    return None if v is None else round(float(v), 1)
