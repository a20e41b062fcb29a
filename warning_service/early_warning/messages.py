"""Render outbox rows into channel messages from templates/ (sandboxed Jinja2, StrictUndefined).

Rendering happens at dispatch time, from the CAP revision the row names, so 130,000 rows are queued as
plain data and only the batch being sent is rendered. A template error never drops a message: a plain
fallback goes out and the error is logged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import Message
from warning_service.acknowledgment.tokens import link_key, make_token
from warning_service.config import Settings
from warning_service.delivery.models import OPEN_NOTICE_STATES, Notice
from warning_service.early_warning.identifiers import CHINA_TZ
from warning_service.early_warning.models import (
    ACTION_ZH,
    HAZARD_ZH,
    LEVEL_COLOUR,
    LEVEL_ZH,
    EarlyWarning,
    WarningRevision,
)
from warning_service.logging import get_logger
from warning_service.person.models import ROLE_ZH, Person
from warning_service.region import service as regions

log = get_logger(__name__)
KIND_ACTION = {"alert": "发布", "update": "更新", "cancel": "解除", "recall": "发布", "deputy": "发布",
               "escalation": "发布"}
STATUS_PREFIX = {"actual": "", "exercise": "【演练】", "test": "【测试】"}


@lru_cache(maxsize=4)
def environment(templates_dir: str) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(templates_dir), undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
    )


def local_minute(t: datetime | None) -> str:
    """'2026年07月01日16时00分', Beijing time, to the minute, as warnings are written."""
    return t.astimezone(CHINA_TZ).strftime("%Y年%m月%d日%H时%M分") if t else ""


def sms_segments(text: str) -> int:
    """Segments an SMS of this text costs: GSM-7 160/153, otherwise UCS-2 70/67 (Chinese is UCS-2)."""
    if all(ord(c) < 128 for c in text):
        n, single, multi = len(text), 160, 153
    else:
        n = sum(2 if ord(c) > 0xFFFF else 1 for c in text)
        single, multi = 70, 67
    return 1 if n <= single else math.ceil(n / multi)


def _first_line(text: str, limit: int = 60) -> str:
    """The first guidance item without its number: SMS has room for one."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = re.sub(r"^\(?[0-9一二三四五六七八九十]+[.、)）]\s*", "", line)
    return line if len(line) <= limit else line[:limit] + "…"


def _template_names(channel: str, kind: str, hazard: str, part: str = "") -> list[str]:
    suffix = f".{part}.j2" if part else ".j2"
    if kind in ("escalation", "deputy", "recall"):
        return [f"{channel}/{kind}{suffix}", f"{channel}/{hazard}{suffix}", f"{channel}/default{suffix}"]
    return [f"{channel}/{hazard}{suffix}", f"{channel}/default{suffix}"]


async def render_outbox(session: AsyncSession, *, rows: Sequence[Any], settings: Settings) -> dict[int, Message]:
    """Messages for claimed outbox rows, keyed by outbox id. Loads what they need in a few queries."""
    if not rows:
        return {}
    ctx = await _load_context(session, rows)
    env = environment(str(settings.templates_dir))
    key = link_key(settings.secret_key.get_secret_value())
    base = settings.public_base_url
    out: dict[int, Message] = {}
    for row in rows:
        out[row.id] = _render_one(env, row, ctx, key=key, base=base)
    return out


async def _load_context(session: AsyncSession, rows: Sequence[Any]) -> dict[str, Any]:
    pairs = {(r.warning_id, r.revision) for r in rows}
    revs = {(v.warning_id, v.revision): v for v in (await session.execute(select(WarningRevision).where(
        tuple_(WarningRevision.warning_id, WarningRevision.revision).in_(list(pairs))))).scalars()}
    warnings = {w.id: w for w in (await session.execute(select(EarlyWarning).where(
        EarlyWarning.id.in_({r.warning_id for r in rows})))).scalars()}
    notice_ids = {r.notice_id for r in rows if r.notice_id}
    notices: dict[int, Any] = {}
    subjects: dict[int, Any] = {}
    persons: dict[int, Any] = {}
    open_counts: dict[int, int] = {}
    paths: dict[str, str] = {}
    if notice_ids:
        notices = {n.id: n for n in (await session.execute(select(
            Notice.id, Notice.person_id, Notice.region_code, Notice.deadline, Notice.requires_ack, Notice.reason,
            Notice.escalation_of, Notice.state).where(Notice.id.in_(notice_ids)))).all()}
        subject_ids = {n.escalation_of for n in notices.values() if n.escalation_of}
        if subject_ids:
            subjects = {n.id: n for n in (await session.execute(select(
                Notice.id, Notice.person_id, Notice.region_code).where(Notice.id.in_(subject_ids)))).all()}
        person_ids = {n.person_id for n in notices.values()} | {s.person_id for s in subjects.values()}
        persons = {p.id: p for p in (await session.execute(select(
            Person.id, Person.name, Person.role, Person.phone).where(Person.id.in_(person_ids)))).all()}
        open_counts = dict((await session.execute(select(Notice.person_id, func.count()).where(
            Notice.person_id.in_({n.person_id for n in notices.values()}), Notice.requires_ack.is_(True),
            Notice.state.in_(OPEN_NOTICE_STATES)).group_by(Notice.person_id))).all())
        if subjects:
            paths = await regions.region_paths(session, [s.region_code for s in subjects.values()])
    return {"revs": revs, "warnings": warnings, "notices": notices, "subjects": subjects, "persons": persons,
            "open_counts": open_counts, "paths": paths}


def _render_one(env: SandboxedEnvironment, row: Any, ctx: dict[str, Any], *, key: bytes, base: str) -> Message:
    warning: EarlyWarning = ctx["warnings"][row.warning_id]
    rev: WarningRevision = ctx["revs"][(row.warning_id, row.revision)]
    notice = ctx["notices"].get(row.notice_id) if row.notice_id else None
    person = ctx["persons"].get(notice.person_id) if notice else None
    kind = row.kind
    ack_required = bool(notice and notice.requires_ack and kind not in ("cancel",) and warning.state == "active")
    token = make_token(notice.id, key=key) if notice else None
    link = f"{base}/a/{token}" if token else ""
    only_one = notice is not None and ctx["open_counts"].get(notice.person_id, 0) <= 1
    reply_code = "1" if only_one else str(warning.reply_code)
    subject_ctx = {"name": "", "role_zh": "", "region": "", "phone": ""}
    if notice is not None and notice.escalation_of:
        s = ctx["subjects"].get(notice.escalation_of)
        sp = ctx["persons"].get(s.person_id) if s else None
        if s and sp:
            subject_ctx = {"name": sp.name, "role_zh": ROLE_ZH.get(sp.role, sp.role),
                           "region": ctx["paths"].get(s.region_code, s.region_code), "phone": sp.phone or ""}
    context = {
        "kind": kind,
        "action": KIND_ACTION.get(kind, ACTION_ZH.get(rev.msg_type, "发布")),
        "prefix": STATUS_PREFIX.get(warning.status, ""),
        "w": {
            "sender": warning.sender, "identifier": rev.identifier, "hazard": warning.hazard,
            "hazard_zh": HAZARD_ZH.get(warning.hazard, warning.hazard), "level": rev.level,
            "level_zh": LEVEL_ZH.get(rev.level, rev.level), "colour": LEVEL_COLOUR.get(rev.level, "#333"),
            "title": rev.title, "description": rev.description, "instruction": rev.instruction,
            "instruction_short": _first_line(rev.instruction), "area": rev.area_desc,
            "sent_at": local_minute(rev.sent_at), "expires_at": local_minute(rev.expires_at),
        },
        "person": {"name": person.name if person else "", "role_zh": ROLE_ZH.get(person.role, person.role)
                   if person else ""},
        "ack": {"required": ack_required, "link": link, "reply_code": reply_code,
                "deadline": local_minute(notice.deadline) if notice and notice.deadline else ""},
        "subject": subject_ctx,
    }
    subject = html = None
    try:
        if row.channel == "email":
            subject = _render(env, _template_names("email", kind, warning.hazard, "subject"), context).strip()
            body = _render(env, _template_names("email", kind, warning.hazard, "txt"), context).strip()
            html = _render(env, _template_names("email", kind, warning.hazard, "html"), context)
        else:
            body = _render(env, _template_names(row.channel, kind, warning.hazard), context).strip()
    except Exception as exc:  # noqa: BLE001 — any template failure falls back to plain text
        log.error("template_render_failed", outbox_id=row.id, warning_id=row.warning_id, channel=row.channel,
                  kind=kind, error=f"{type(exc).__name__}: {exc}")
        body, subject, html = _fallback(context), None, None
        if row.channel == "email":
            subject = f"{context['w']['sender']}{context['action']}{context['w']['hazard_zh']}预警"
    if row.channel == "sms":
        segments = sms_segments(body)
        log.debug("sms_rendered", outbox_id=row.id, segments=segments, chars=len(body))
    metadata = {"kind": kind, "warning_id": str(row.warning_id), "notice_id": str(row.notice_id or ""),
                "outbox_id": str(row.id)}
    if row.channel == "sms":
        metadata["segments"] = str(sms_segments(body))
    return Message(
        channel=row.channel, address=row.address, body=body, subject=subject, html=html,
        idempotency_key=getattr(row, "idempotency_key", None) or f"outbox-{row.id}",
        status_callback=f"{base}/webhooks/twilio/status" if row.channel in ("sms", "voice") else None,
        gather_action=(f"{base}/webhooks/twilio/voice/gather?t={token}" if row.channel == "voice" and token
                       and ack_required else None),
        metadata=metadata,
    )


def _render(env: SandboxedEnvironment, names: list[str], context: dict[str, Any]) -> str:
    return env.select_template(names).render(context)


def _fallback(c: dict[str, Any]) -> str:
    w, ack = c["w"], c["ack"]
    text = (f"{c['prefix']}【{w['sender']}】{w['sent_at']}{c['action']}{w['area']}{w['hazard_zh']}{w['level_zh']}预警。"
            f"{w['description'] if c['kind'] != 'cancel' else '预警解除。'}")
    if ack["required"]:
        text += f" 回复 {ack['reply_code']} 确认,或点击 {ack['link']}"
    return text
