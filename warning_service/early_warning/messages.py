"""Render outbox rows into channel messages from templates/ (sandboxed Jinja2, StrictUndefined).

Rendering happens at dispatch time, from the CAP revision the row names, so 130,000 rows are queued as
plain data and only the batch being sent is rendered. A template error never drops a message: a plain
fallback goes out and the error is logged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, meta, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import distinct, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import Message, TemplateFields, sms_segments
from warning_service.config import Settings
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
from warning_service.notice.models import OPEN_STATES, Notice
from warning_service.notice.tokens import link_key, make_token
from warning_service.person.models import ROLE_ZH, Person
from warning_service.region import service as regions

log = get_logger(__name__)
KIND_ACTION = {"alert": "发布", "update": "更新", "cancel": "解除", "recall": "发布", "deputy": "发布",
               "escalation": "发布", "duty_room": "发布", "duty_watch": "发布", "attendance": "发布"}
# Kinds with texts of their own (a chain's call names whom it chases; a 到岗 demand is not the warning text).
OWN_TEMPLATE_KINDS = ("escalation", "deputy", "recall", "duty_room", "duty_watch", "attendance")
STATUS_PREFIX = {"actual": "", "exercise": "【演练】", "test": "【测试】"}


@lru_cache(maxsize=8)
def environment(templates_dir: str, auto_reload: bool = False) -> SandboxedEnvironment:
    # Outside development templates are read once: checking the files for every message is measurable.
    return SandboxedEnvironment(
        loader=FileSystemLoader(templates_dir), undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
        auto_reload=auto_reload,
    )


@lru_cache(maxsize=256)
def _variables(env: SandboxedEnvironment, name: str) -> frozenset[str]:
    """Top-level names a template uses, so renders that cannot differ are shared."""
    source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
    return frozenset(meta.find_undeclared_variables(env.parse(source)))


def local_minute(t: datetime | None) -> str:
    """'2026年07月01日16时00分', Beijing time, to the minute, as warnings are written."""
    return t.astimezone(CHINA_TZ).strftime("%Y年%m月%d日%H时%M分") if t else ""


def _first_line(text: str, limit: int = 60) -> str:
    """The first guidance item without its number: SMS has room for one."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = re.sub(r"^\(?[0-9一二三四五六七八九十]+[.、)）]\s*", "", line)
    return line if len(line) <= limit else line[:limit] + "…"


def _template_names(channel: str, kind: str, hazard: str, part: str = "") -> list[str]:
    suffix = f".{part}.j2" if part else ".j2"
    if kind in OWN_TEMPLATE_KINDS:
        return [f"{channel}/{kind}{suffix}", f"{channel}/{hazard}{suffix}", f"{channel}/default{suffix}"]
    return [f"{channel}/{hazard}{suffix}", f"{channel}/default{suffix}"]


async def render_outbox(session: AsyncSession, *, rows: Sequence[Any], settings: Settings) -> dict[int, Message]:
    """Messages for claimed outbox rows, keyed by outbox id. Loads what they need in a few queries."""
    if not rows:
        return {}
    ctx = await _load_context(session, rows)
    renderer = _Renderer(environment(str(settings.templates_dir), settings.environment == "development"), ctx,
                         key=link_key(settings.secret_key.get_secret_value()), base=settings.public_base_url)
    return {row.id: renderer.render(row) for row in rows}


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
        # Only texts that ask for a reply need to know whether "回复 1" is unambiguous for the person.
        asking = {notices[r.notice_id].person_id for r in rows
                  if r.notice_id in notices and r.channel in ("sms", "email") and r.kind != "cancel"
                  and notices[r.notice_id].requires_ack}
        # "回复 1" is ambiguous only for someone who owes answers to several warnings; with one warning
        # active (the usual storm night) nobody can, and the per-person count is skipped.
        several_active = (await session.execute(select(func.count()).select_from(EarlyWarning).where(
            EarlyWarning.state == "active"))).scalar_one() > 1
        if asking and several_active:
            open_counts = dict((await session.execute(
                select(Notice.person_id, func.count(distinct(Notice.warning_id))).where(
                    Notice.person_id.in_(asking), Notice.requires_ack.is_(True),
                    Notice.state.in_(OPEN_STATES)).group_by(Notice.person_id))).all())
        if subjects:
            paths = await regions.region_paths(session, [s.region_code for s in subjects.values()])
    return {"revs": revs, "warnings": warnings, "notices": notices, "subjects": subjects, "persons": persons,
            "open_counts": open_counts, "paths": paths}


# Rendered with this in place of the link, then each notice's own link is put in: for a province-wide
# warning the same few texts differ only by link, so most rows cost a string replace, not a render.
_LINK = "\x00ack-link\x00"


class _Renderer:
    """Renders a batch; texts that cannot differ are rendered once and shared."""

    def __init__(self, env: SandboxedEnvironment, ctx: dict[str, Any], *, key: bytes, base: str) -> None:
        self.env, self.ctx, self.key, self.base = env, ctx, key, base
        self._warning_ctx: dict[tuple[int, int], dict[str, Any]] = {}
        self._templates: dict[tuple[str, str, str], tuple[list[Any], frozenset[str]]] = {}
        self._texts: dict[tuple[Any, ...], tuple[str, str | None, str | None, int | None]] = {}
        self._minutes: dict[datetime, str] = {}
        # Links all have one length (ids are five bytes), so a text's SMS segment count is known before its link.
        self._sample_link = f"{base}/a/{make_token(1, key=key)}"

    def _minute(self, t: datetime | None) -> str:
        if t is None:
            return ""
        if t not in self._minutes:
            self._minutes[t] = local_minute(t)
        return self._minutes[t]

    def _w(self, warning: EarlyWarning, rev: WarningRevision) -> dict[str, Any]:
        k = (warning.id, rev.revision)  # type: ignore[assignment]
        if k not in self._warning_ctx:
            self._warning_ctx[k] = {
                "sender": warning.sender, "identifier": rev.identifier, "hazard": warning.hazard,
                "hazard_zh": HAZARD_ZH.get(warning.hazard, warning.hazard), "level": rev.level,
                "level_zh": LEVEL_ZH.get(rev.level, rev.level), "colour": LEVEL_COLOUR.get(rev.level, "#333"),
                "title": rev.title, "description": rev.description, "instruction": rev.instruction,
                "instruction_short": _first_line(rev.instruction), "area": rev.area_desc,
                "sent_at": local_minute(rev.sent_at), "expires_at": local_minute(rev.expires_at),
            }
        return self._warning_ctx[k]

    def _templates_for(self, channel: str, kind: str, hazard: str) -> tuple[list[Any], frozenset[str]]:
        k = (channel, kind, hazard)
        if k not in self._templates:
            parts = ("subject", "txt", "html") if channel == "email" else ("",)
            templates = [self.env.select_template(_template_names(channel, kind, hazard, p)) for p in parts]
            used = frozenset().union(*(_variables(self.env, t.name) for t in templates))
            self._templates[k] = (templates, used)
        return self._templates[k]

    def render(self, row: Any) -> Message:
        ctx = self.ctx
        warning: EarlyWarning = ctx["warnings"][row.warning_id]
        notice = ctx["notices"].get(row.notice_id) if row.notice_id else None
        person = ctx["persons"].get(notice.person_id) if notice else None
        kind = row.kind
        ack_required = bool(notice and notice.requires_ack and kind != "cancel" and warning.state == "active")
        token = make_token(notice.id, key=self.key) if notice else None
        only_one = notice is not None and ctx["open_counts"].get(notice.person_id, 0) <= 1
        reply_code = "1" if only_one else str(warning.reply_code)
        deadline = self._minute(notice.deadline) if notice else ""
        try:
            templates, used = self._templates_for(row.channel, kind, warning.hazard)
            failure = None
        except Exception as exc:  # noqa: BLE001 — a missing or broken template falls back to plain text
            templates, used, failure = [], frozenset(("person", "subject")), exc
        key = (row.channel, kind, row.warning_id, row.revision, ack_required, token is not None, reply_code, deadline,
               (person.name, person.role) if person is not None and "person" in used else None,
               notice.escalation_of if notice is not None and "subject" in used else None)
        entry = self._texts.get(key)
        if entry is None:
            context = self._context(row, warning, notice, person, ack_required=ack_required, has_link=bool(token),
                                    reply_code=reply_code, deadline=deadline)
            entry = self._texts[key] = self._texts_for(row, templates, context, failure)
        body, subject, html, segments = entry
        if token:
            link = f"{self.base}/a/{token}"
            body = body.replace(_LINK, link)
            html = html.replace(_LINK, link) if html else html
        metadata = {"kind": kind, "warning_id": str(row.warning_id), "notice_id": str(row.notice_id or ""),
                    "outbox_id": str(row.id)}
        if segments is not None:
            metadata["segments"] = str(segments)
        fields = None
        if row.channel in ("sms", "voice"):
            # Domestic platforms send registered templates only: they get the parts, not the text.
            w = self._w(warning, ctx["revs"][(row.warning_id, row.revision)])
            fields = TemplateFields(sender=w["sender"], area=w["area"], hazard=w["hazard_zh"], level=w["level_zh"],
                                    reply_code=reply_code, token=token or "", deadline=deadline,
                                    sent_at=w["sent_at"], instruction=w["instruction_short"])
        return Message(
            channel=row.channel, address=row.address, body=body, subject=subject, html=html,
            idempotency_key=getattr(row, "idempotency_key", None) or f"outbox-{row.id}",
            # The outbox id rides in the signed callback URL, so a receipt finds its row even when it
            # outruns the write of the provider id.
            status_callback=(f"{self.base}/webhooks/twilio/status?o={row.id}"
                             if row.channel in ("sms", "voice") else None),
            gather_action=(f"{self.base}/webhooks/twilio/voice/gather?t={token}"
                           if row.channel == "voice" and token and ack_required else None),
            metadata=metadata,
            template=fields,
        )

    def _context(self, row: Any, warning: EarlyWarning, notice: Any, person: Any, *, ack_required: bool,
                 has_link: bool, reply_code: str, deadline: str) -> dict[str, Any]:
        ctx = self.ctx
        rev: WarningRevision = ctx["revs"][(row.warning_id, row.revision)]
        subject_ctx = {"name": "", "role_zh": "", "region": "", "phone": ""}
        if notice is not None and notice.escalation_of:
            s = ctx["subjects"].get(notice.escalation_of)
            sp = ctx["persons"].get(s.person_id) if s else None
            if s and sp:
                subject_ctx = {"name": sp.name, "role_zh": ROLE_ZH.get(sp.role, sp.role),
                               "region": ctx["paths"].get(s.region_code, s.region_code), "phone": sp.phone or ""}
        return {
            "kind": row.kind,
            "action": KIND_ACTION.get(row.kind, ACTION_ZH.get(rev.msg_type, "发布")),
            "prefix": STATUS_PREFIX.get(warning.status, ""),
            "w": self._w(warning, rev),
            "person": {"name": person.name if person else "",
                       "role_zh": ROLE_ZH.get(person.role, person.role) if person else ""},
            "ack": {"required": ack_required, "link": _LINK if has_link else "", "reply_code": reply_code,
                    "deadline": deadline},
            "subject": subject_ctx,
        }

    def _texts_for(self, row: Any, templates: list[Any], context: dict[str, Any], failure: Exception | None
                   ) -> tuple[str, str | None, str | None, int | None]:
        try:
            if failure is not None:
                raise failure
            rendered = [t.render(context) for t in templates]
            if row.channel == "email":
                body, subject, html = rendered[1].strip(), rendered[0].strip(), rendered[2]
            else:
                body, subject, html = rendered[0].strip(), None, None
        except Exception as exc:  # noqa: BLE001 — any template failure falls back to plain text
            log.error("template_render_failed", outbox_id=row.id, warning_id=row.warning_id, channel=row.channel,
                      kind=row.kind, error=f"{type(exc).__name__}: {exc}")
            subject = (f"{context['w']['sender']}{context['action']}{context['w']['hazard_zh']}预警"
                       if row.channel == "email" else None)
            body, html = _fallback(context), None
        segments = sms_segments(body.replace(_LINK, self._sample_link)) if row.channel == "sms" else None
        return body, subject, html, segments


def _fallback(c: dict[str, Any]) -> str:
    w, ack = c["w"], c["ack"]
    text = (f"{c['prefix']}【{w['sender']}】{w['sent_at']}{c['action']}{w['area']}{w['hazard_zh']}{w['level_zh']}预警。"
            f"{w['description'] if c['kind'] != 'cancel' else '预警解除。'}")
    if ack["required"]:
        text += f" 回复 {ack['reply_code']} 确认,或点击 {ack['link']}"
    return text
