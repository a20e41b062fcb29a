"""复盘: one warning's whole story as a single timeline, from the ledger and the tables.

Decisions are listed one by one in the order they were taken: every ledger entry about the warning (issue,
updates, lift, each batch of re-calls, deputies, escalations, duty-room calls and time-outs), every change of
an emergency response linked to it, every proxy answer (代叫应, a duty officer's decision). What happened to
the many is counted per minute: messages that left or failed, answers by path (primary notices in their
current round, as the report counts them, and chain answers apart), feedback. The header is the warning
report itself (report/service.py), so the 复盘 and the report cannot disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, and_, cast, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service import labels
from warning_service.acknowledgment.models import Acknowledgment, Feedback
from warning_service.auth.models import User
from warning_service.delivery.models import OutboxMessage
from warning_service.dialect import is_postgresql
from warning_service.early_warning.models import WarningRevision
from warning_service.ledger.models import LedgerEntry, LedgerPending
from warning_service.notice.models import Notice, NoticeReason, NoticeState
from warning_service.report import service as reports
from warning_service.report.scope import Scoped
from warning_service.response.models import EmergencyResponse, ResponseChange, ResponseWarning

A, N, OB, FB = Acknowledgment.__table__, Notice.__table__, OutboxMessage.__table__, Feedback.__table__
FAILED = ("failed", "undelivered")
LEFT = ("sent", "delivered", "undelivered")
LEDGER_ZH = {
    "warning.submitted": "提交审核签发", "warning.approved": "带班领导审核签发", "warning.rejected": "带班领导退回",
    "warning.issued": "发布预警", "warning.updated": "更新预警", "warning.lifted": "解除预警",
    "warning.expired": "预警失效", "escalation.recalls": "重复叫应", "escalation.deputies": "B岗叫应",
    "escalation.escalated": "逐级上报", "escalation.duty_room": "值班室兜底", "escalation.duty_watch": "值班室知会",
    "escalation.timed_out": "超时未叫应", "escalation.answered_in_chain": "链上已应答",
    "response.started": "启动应急响应", "response.raised": "提升响应级别", "response.lowered": "降低响应级别",
    "response.ended": "终止应急响应", "response.warning_linked": "关联预警",
}
KIND_ZH = {"revision": "预警报文", "ledger": "决策记录", "response": "应急响应", "proxy": "代叫应",
           "messages": "消息发送", "answers": "叫应应答", "chain_answers": "链上应答", "feedback": "响应反馈"}


def _minute(session: AsyncSession, col: Any) -> Any:
    """The timestamp cut to the minute, as text both databases sort the same way."""
    if is_postgresql(session):
        return func.to_char(func.date_trunc("minute", col), "YYYY-MM-DD\"T\"HH24:MI")
    return func.strftime("%Y-%m-%dT%H:%M", col)


def _at(minute: str) -> datetime:
    return datetime.fromisoformat(minute).replace(tzinfo=UTC)


def _event(at: datetime, kind: str, text: str, *, actor: str = "", count: int | None = None,
           ref: str = "", order: int = 0) -> dict[str, Any]:
    return {"at": at, "kind": kind, "kind_zh": KIND_ZH[kind], "text": text, "actor": actor, "count": count,
            "ref": ref, "order": order}


async def review(session: AsyncSession, *, scoped: Scoped, now: datetime) -> dict[str, Any]:
    """The report of the warning and its timeline, oldest first."""
    w = scoped.warning
    report = await reports.warning_report(session, scoped=scoped, now=now, missing_limit=0, proxy_limit=0)
    events: list[dict[str, Any]] = []
    for r in (await session.execute(select(WarningRevision).where(WarningRevision.warning_id == w.id)
                                    .order_by(WarningRevision.revision))).scalars():
        events.append(_event(r.sent_at, "revision", f"{labels.zh(labels.MSG_TYPE, r.msg_type)}:"
                             f"{labels.zh(labels.WARNING_LEVEL, r.level)} {r.title} — {r.description}",
                             ref=r.identifier, order=0))
    responses = list((await session.execute(
        select(EmergencyResponse.id).join(ResponseWarning, ResponseWarning.response_id == EmergencyResponse.id)
        .where(ResponseWarning.warning_id == w.id))).scalars())
    events += await _ledger(session, warning_id=w.id, responses=responses)
    for c in (await session.execute(select(ResponseChange).where(ResponseChange.response_id.in_(responses))
                                    .order_by(ResponseChange.at, ResponseChange.id))).scalars():
        lv = "→".join(labels.zh(labels.RESPONSE_LEVEL, x) for x in (c.from_level, c.to_level) if x)
        events.append(_event(c.at, "response", f"{labels.zh(labels.RESPONSE_ACTION, c.action)} {lv}"
                             f"(决策人:{c.decided_by}{';' + c.reason if c.reason else ''};到岗通知 {c.demands} 人)",
                             actor=c.actor, count=c.demands, ref=f"response:{c.response_id}", order=2))
    events += await _proxies(session, warning_id=w.id)
    events += await _per_minute(session, warning_id=w.id)
    events.sort(key=lambda e: (e["at"], e["order"]))
    for i, e in enumerate(events, 1):
        e["seq"] = i
    return {"report": report, "events": events, "counts": _sums(events)}


async def _ledger(session: AsyncSession, *, warning_id: int, responses: list[int]) -> list[dict[str, Any]]:
    """Ledger entries about the warning and its responses, sealed or not yet sealed."""
    out = []
    for table in (LedgerEntry.__table__, LedgerPending.__table__):
        subject = and_(table.c.subject_type == "warning", table.c.subject_id == str(warning_id))
        if responses:
            subject = subject | and_(table.c.subject_type == "response",
                                     table.c.subject_id.in_([str(r) for r in responses]))
        for row in (await session.execute(select(table.c.id, table.c.at, table.c.actor, table.c.action,
                                                 table.c.details).where(subject).order_by(table.c.id))).all():
            d = row.details or {}
            n = d.get("count") if isinstance(d, dict) else None
            text = LEDGER_ZH.get(row.action, row.action) + (f" {n} 人" if n else "")
            out.append(_event(row.at, "ledger", text, actor=row.actor, count=n, ref=f"{row.action}#{row.id}",
                              order=1))
    return out


async def _proxies(session: AsyncSession, *, warning_id: int) -> list[dict[str, Any]]:
    rows = (await session.execute(
        select(A.c.acknowledged_at, A.c.proxy_method, A.c.note, A.c.notice_id, User.username, N.c.role,
               N.c.region_code)
        .join(N, N.c.id == A.c.notice_id).outerjoin(User, User.id == A.c.actor_user_id)
        .where(A.c.warning_id == warning_id, A.c.path == "proxy").order_by(A.c.acknowledged_at, A.c.id))).all()
    return [_event(r.acknowledged_at, "proxy",
                   f"{labels.zh(labels.PROXY_METHOD, r.proxy_method)}:{r.region_code} {labels.zh(labels.ROLE, r.role)}"
                   f"{(' — ' + r.note) if r.note else ''}", actor=f"user:{r.username}" if r.username else "",
                   count=1, ref=f"notice:{r.notice_id}", order=3) for r in rows]


async def _per_minute(session: AsyncSession, *, warning_id: int) -> list[dict[str, Any]]:
    """Counts per minute in one statement: messages out and failed, answers by path, chain answers, feedback."""
    sent_m = _minute(session, func.coalesce(OB.c.sent_at, OB.c.updated_at))
    msgs = (select(literal("messages").label("k"), sent_m.label("m"), cast(OB.c.channel, String).label("a"),
                   cast(OB.c.status, String).label("b"), func.count().label("n"))
            .where(OB.c.warning_id == warning_id, OB.c.status.in_(LEFT + ("failed",)))
            .group_by(sent_m, OB.c.channel, OB.c.status))
    ack_m = _minute(session, A.c.acknowledged_at)
    counted = and_(N.c.reason == NoticeReason.primary, N.c.state == NoticeState.acknowledged, A.c.round == N.c.round)
    late = func.coalesce(cast(A.c.late, String), literal("0"))
    answers = (select(literal("answers").label("k"), ack_m.label("m"), cast(A.c.path, String).label("a"),
                      late.label("b"), func.count().label("n"))
               .select_from(A.join(N, N.c.id == A.c.notice_id))
               .where(A.c.warning_id == warning_id, counted).group_by(ack_m, A.c.path, late))
    chain = (select(literal("chain_answers").label("k"), ack_m.label("m"), cast(N.c.reason, String).label("a"),
                    literal("").label("b"), func.count().label("n"))
             .select_from(A.join(N, N.c.id == A.c.notice_id))
             .where(A.c.warning_id == warning_id, N.c.reason != NoticeReason.primary).group_by(ack_m, N.c.reason))
    fb_m = _minute(session, FB.c.created_at)
    feedback = (select(literal("feedback").label("k"), fb_m.label("m"), literal("").label("a"),
                       literal("").label("b"), func.count().label("n"))
                .select_from(FB.join(N, N.c.id == FB.c.notice_id)).where(N.c.warning_id == warning_id)
                .group_by(fb_m))
    rows = (await session.execute(union_all(msgs, answers, chain, feedback))).all()
    by: dict[tuple[str, str], dict[tuple[str, str], int]] = {}
    for k, m, a, b, n in rows:
        by.setdefault((k, m), {})[(a, b)] = by.setdefault((k, m), {}).get((a, b), 0) + int(n)
    out = []
    for (k, m), parts in sorted(by.items()):
        total = sum(parts.values())
        if k == "messages":
            failed = sum(v for (_, st), v in parts.items() if st in FAILED)
            chans = "、".join(f"{labels.zh(labels.CHANNEL, c)} {v}" for c, v in _sum_by(parts, 0).items())
            text = f"发出 {total} 条({chans}),其中失败/未送达 {failed} 条"
        elif k == "answers":
            late_n = sum(v for (_, lt), v in parts.items() if lt not in ("0", "false", "False"))
            paths = "、".join(f"{labels.zh(labels.ACK_PATH, p)} {v}" for p, v in _sum_by(parts, 0).items())
            text = f"叫应 {total} 人({paths}),其中超时 {late_n} 人"
        elif k == "chain_answers":
            text = "链上应答 " + "、".join(f"{labels.zh(labels.NOTICE_REASON, r)} {v}" for r, v in
                                       _sum_by(parts, 0).items())
        else:
            text = f"响应反馈 {total} 条"
        out.append(_event(_at(m), k, text, count=total, order=4, ref=k))
    return out


def _sum_by(parts: dict[tuple[str, str], int], i: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, v in sorted(parts.items()):
        out[key[i]] = out.get(key[i], 0) + v
    return out


def _sums(events: list[dict[str, Any]]) -> dict[str, int]:
    """Totals of the per-minute rows, checked against the report in the tests (and shown in the header)."""
    out: dict[str, int] = {}
    for e in events:
        if e["kind"] in ("messages", "answers", "chain_answers", "feedback", "proxy"):
            out[e["kind"]] = out.get(e["kind"], 0) + (e["count"] or 0)
    return out
