"""Render outbox rows into channel messages from templates/ (sandboxed Jinja2, StrictUndefined).

Rendering happens at dispatch time, from the CAP revision the row names, so 130,000 rows are queued as
plain data and only the batch being sent is rendered. A template error never drops a message: a plain
fallback goes out and the error is logged.

Texts speak as a county office writes (texts.py): one 【sign】, the time as HH:MM, the area with its town,
the action in words (发布/更新/升级为/降级为/延长/解除), the level's own guidance line, a short reply
instruction with its deadline, and the link. SMS texts are fitted into `sms_max_segments` parts by
shortening the description, then the guidance, never the reply instruction or the link. Each message
also carries its parts as `part.*` metadata for providers that send by template (issue 14).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from jinja2 import FileSystemLoader, StrictUndefined, meta, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import distinct, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import BroadcastFields, Message, TemplateFields, sms_segments
from warning_service.broadcast.targets import terminals_of
from warning_service.config import Settings
from warning_service.dialect import in_ids
from warning_service.early_warning import texts
from warning_service.early_warning.guidance import level_lines
from warning_service.early_warning.identifiers import CHINA_TZ
from warning_service.early_warning.models import (
    HAZARD_ZH,
    LEVEL_COLOUR,
    LEVEL_ZH,
    EarlyWarning,
    WarningRevision,
)
from warning_service.evacuation import messages as evacuation
from warning_service.evacuation import shelters as shelter_pages
from warning_service.logging import get_logger
from warning_service.notice.models import ANSWERABLE_STATES, OPEN_STATES, EscalationDigest, Notice
from warning_service.notice.tokens import LinkSigner, link_key
from warning_service.person.models import ROLE_ZH, Person
from warning_service.region import service as regions
from warning_service.region.models import Region

log = get_logger(__name__)
KIND_ACTION = {"alert": "发布", "update": "更新", "cancel": "解除", "recall": "发布", "deputy": "发布",
               "escalation": "发布", "duty_room": "发布", "duty_watch": "发布", "attendance": "发布"}
# Kinds with texts of their own (a chain's call names whom it chases; a 到岗 demand is not the warning text).
OWN_TEMPLATE_KINDS = ("escalation", "deputy", "recall", "duty_room", "duty_watch", "attendance")
STATUS_PREFIX = {"actual": "", "exercise": "【演练】", "test": "【测试】"}
# Warnings issued for a purpose with texts of their own (policy snapshot "purpose").
PURPOSE_TEMPLATES = ("number_check", "drill_notice")
# OPEN_STATES as plain strings: `in` over enum members compares through the enum, per row.
_OPEN = frozenset(str(s) for s in OPEN_STATES)
# An escalation SMS names this many silent people; the rest are counted ("等27人") and listed on its page.
DIGEST_LISTED = 5
DIGEST_SPOKEN = 3


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


def _template_names(channel: str, kind: str, hazard: str, part: str = "", topic: str | None = None) -> list[str]:
    suffix = f".{part}.j2" if part else ".j2"
    if topic:  # 转移避险: a household, special person/place or release has its own text
        return [f"{channel}/{topic}{suffix}", f"{channel}/{hazard}{suffix}", f"{channel}/default{suffix}"]
    if kind in OWN_TEMPLATE_KINDS:
        return [f"{channel}/{kind}{suffix}", f"{channel}/{hazard}{suffix}", f"{channel}/default{suffix}"]
    return [f"{channel}/{hazard}{suffix}", f"{channel}/default{suffix}"]


class NoticeFacts(NamedTuple):
    """What a text needs of a notice. Plain tuples, not SQLAlchemy Rows: a Row finds a column by name after a
    failed attribute lookup (~20 times a tuple field's cost), and a notice is read a dozen times per message."""

    id: int
    person_id: int
    region_code: str
    deadline: datetime | None
    requires_ack: bool
    reason: str
    escalation_of: int | None
    state: str
    root_id: int | None = None
    digest_id: int | None = None


class PersonFacts(NamedTuple):
    id: int
    name: str
    role: str
    phone: str | None


_NOTICE_COLUMNS = tuple(getattr(Notice, f) for f in NoticeFacts._fields)
_PERSON_COLUMNS = tuple(getattr(Person, f) for f in PersonFacts._fields)


async def render_outbox(session: AsyncSession, *, rows: Sequence[Any], settings: Settings,
                        now: datetime | None = None) -> dict[int, Message]:
    """Messages for claimed outbox rows, keyed by outbox id. Loads what they need in a few queries.

    `now` decides whether times print with their date (only when not today, Beijing time)."""
    if not rows:
        return {}
    ctx = await _load_context(session, rows)
    renderer = _Renderer(environment(str(settings.templates_dir), settings.environment == "development"), ctx,
                         key=link_key(settings.secret_key.get_secret_value()), base=settings.public_base_url,
                         settings=settings, now=now or datetime.now(UTC))
    return {row.id: renderer.render(row) for row in rows}


async def _load_context(session: AsyncSession, rows: Sequence[Any]) -> dict[str, Any]:
    pairs = {(r.warning_id, r.revision) for r in rows}
    # The revision before each one too: an update's words (升级为, 延长…) depend on what it changed.
    wanted = pairs | {(w, r - 1) for w, r in pairs if r > 1}
    revs = {(v.warning_id, v.revision): v for v in (await session.execute(select(WarningRevision).where(
        tuple_(WarningRevision.warning_id, WarningRevision.revision).in_(list(wanted))))).scalars()}
    warnings = {w.id: w for w in (await session.execute(select(EarlyWarning).where(
        EarlyWarning.id.in_({r.warning_id for r in rows})))).scalars()}
    notice_ids = {r.notice_id for r in rows if r.notice_id}
    notices: dict[int, Any] = {}
    subjects: dict[int, Any] = {}
    digests: dict[int, Any] = {}
    members: dict[int, list[Any]] = {}
    persons: dict[int, Any] = {}
    open_counts: dict[int, int] = {}
    if notice_ids:
        notices = {n.id: n for n in map(NoticeFacts._make, (await session.execute(select(*_NOTICE_COLUMNS).where(
            in_ids(session, Notice.id, notice_ids)))).all())}
        digest_ids = {n.digest_id for n in notices.values() if n.digest_id}
        if digest_ids:
            digests = dict((await session.execute(select(EscalationDigest.id, EscalationDigest.reply_code).where(
                EscalationDigest.id.in_(digest_ids)))).all())
            for m in (await session.execute(select(
                    Notice.digest_id, Notice.id, Notice.root_id, Notice.escalation_of, Notice.state).where(
                    Notice.digest_id.in_(digest_ids)).order_by(Notice.id))).all():
                members.setdefault(m.digest_id, []).append(m)
        chained = [n for n in notices.values() if n.escalation_of] + [m for ms in members.values() for m in ms]
        subject_ids = {i for n in chained for i in (n.escalation_of, n.root_id) if i}
        if subject_ids:
            subjects = {n.id: n for n in (await session.execute(select(
                Notice.id, Notice.person_id, Notice.region_code).where(in_ids(session, Notice.id, subject_ids)))).all()}
        person_ids = {n.person_id for n in notices.values()} | {s.person_id for s in subjects.values()}
        persons = {p.id: p for p in map(PersonFacts._make, (await session.execute(select(*_PERSON_COLUMNS).where(
            in_ids(session, Person.id, person_ids)))).all())}
        # Only texts that ask for a reply need to know whether "回复 1" is unambiguous for the person.
        asking = {notices[r.notice_id].person_id for r in rows
                  if r.notice_id in notices and r.channel in ("sms", "email") and r.kind != "cancel"
                  and notices[r.notice_id].requires_ack}
        # "回复 1" is ambiguous only for someone who owes answers to several warnings; with one warning
        # active (the usual storm night) nobody can, and the per-person count is skipped.
        several_active = (await session.execute(select(func.count()).select_from(EarlyWarning).where(
            EarlyWarning.state == "active"))).scalar_one() > 1
        # An escalation digest has a code of its own, so a person with one warning may owe several answers.
        any_digest = bool(digests) or (await session.execute(select(literal(1)).where(
            Notice.digest_id.is_not(None), Notice.warning_id.in_({r.warning_id for r in rows}),
            Notice.state.in_(OPEN_STATES)).limit(1))).first() is not None
        if asking and (several_active or any_digest):
            code = func.coalesce(EscalationDigest.reply_code, EarlyWarning.reply_code)
            open_counts = dict((await session.execute(
                select(Notice.person_id, func.count(distinct(code)))
                .join(EarlyWarning, EarlyWarning.id == Notice.warning_id)
                .outerjoin(EscalationDigest, EscalationDigest.id == Notice.digest_id).where(
                    in_ids(session, Notice.person_id, asking), Notice.requires_ack.is_(True),
                    Notice.state.in_(OPEN_STATES)).group_by(Notice.person_id))).all())
    # Places: each target, each escalation subject and each loudspeaker village, named from its town down.
    codes = {c for v in revs.values() for c in v.targets} | {s.region_code for s in subjects.values()} | {
        r.region_code for r in rows if r.channel == "broadcast" and r.region_code} | {
        w.sender_code[:6] for w in warnings.values()}
    regions_by_code = await _regions_with_ancestors(session, codes)
    villages = [r.region_code for r in rows if r.channel == "broadcast" and r.region_code]
    return {"revs": revs, "warnings": warnings, "notices": notices, "subjects": subjects, "persons": persons,
            "open_counts": open_counts, "regions": regions_by_code, "digests": digests, "members": members,
            "terminals": await terminals_of(session, villages) if villages else {},
            "evacuation": await evacuation.load(session, rows=rows, notices=notices)}


async def _regions_with_ancestors(session: AsyncSession, codes: set[str]) -> dict[str, Any]:
    if not codes:
        return {}
    found = {r.code: r for r in (await session.execute(select(Region.code, Region.name, Region.level, Region.path)
                                                       .where(Region.code.in_(list(codes))))).all()}
    above = {a for r in found.values() for a in regions.ancestor_codes(r.path)} - set(found)
    if above:
        found |= {r.code: r for r in (await session.execute(select(
            Region.code, Region.name, Region.level, Region.path).where(Region.code.in_(list(above))))).all()}
    return found


_TOWN_AND_BELOW = ("town", "village", "grid")


def _names_from_town(code: str, by_code: dict[str, Any]) -> list[str]:
    """A region's names from its town down ('松门镇', '南城村'); above town, its own name only."""
    r = by_code.get(code)
    if r is None:
        return [code]
    if r.level not in _TOWN_AND_BELOW:
        return [r.name]
    chain = [by_code[c] for c in regions.ancestor_codes(r.path) if c in by_code]
    return [a.name for a in chain if a.level in _TOWN_AND_BELOW]


# Rendered with this in place of the link, then each notice's own link is put in: for a province-wide
# warning the same few texts differ only by link, so most rows cost a string replace, not a render.
_LINK = "\x00ack-link\x00"


class _Renderer:
    """Renders a batch; texts that cannot differ are rendered once and shared."""

    def __init__(self, env: SandboxedEnvironment, ctx: dict[str, Any], *, key: bytes, base: str,
                 settings: Settings, now: datetime) -> None:
        self.env, self.ctx, self.key, self.base, self.settings, self.now = env, ctx, key, base, settings, now
        self._hazard_names = {**HAZARD_ZH, **settings.hazard_name_overrides()}
        self._warning_ctx: dict[tuple[int, int, str], dict[str, Any]] = {}
        self._templates: dict[tuple[str, str, str, str | None], tuple[list[Any], frozenset[str]]] = {}
        self._texts: dict[tuple[Any, ...], tuple[str, str | None, str | None, dict[str, str],
                                                 dict[str, str] | None]] = {}
        self._warnings: dict[int, tuple[EarlyWarning, bool, str, str | None, str]] = {}
        self._clocks: dict[datetime | None, str] = {}
        self._sign = LinkSigner(key).token
        # Without a household task or special notice in the batch only a release or shelter row has a topic.
        loaded = ctx["evacuation"]
        self._topics = bool(loaded.tasks or loaded.special)
        # Links all have one length (ids are five bytes), so a text's SMS segment count is known before its link.
        self._sample_link = f"{base}/a/{self._sign(1)}"

    def _place(self, code: str) -> str:
        return texts.place_name(_names_from_town(code, self.ctx["regions"]))

    def _w(self, warning: EarlyWarning, rev: WarningRevision, kind: str) -> dict[str, Any]:
        k = (warning.id, rev.revision, kind)  # type: ignore[assignment]
        if k in self._warning_ctx:
            return self._warning_ctx[k]
        now, snap = self.now, warning.policy or {}
        prev = self.ctx["revs"].get((warning.id, rev.revision - 1))
        hazard_zh = self._hazard_names.get(warning.hazard, warning.hazard)
        # A level name the policy gives (山洪 "立即转移") replaces the colour; only for the level it was given for.
        level_zh = (snap.get("level_name") if snap.get("level") == rev.level else None) or LEVEL_ZH.get(
            rev.level, rev.level)
        area = texts.area_text([_names_from_town(c, self.ctx["regions"]) for c in rev.targets]) or rev.area_desc
        action = texts.action_for(kind, msg_type=rev.msg_type, level=rev.level,
                                  previous_level=prev.level if prev else None, expires_at=rev.expires_at,
                                  previous_expires_at=prev.expires_at if prev else None)
        time = texts.clock(rev.sent_at, now=now)
        until = texts.clock(rev.expires_at, now=now)
        lines = level_lines(self.settings.templates_dir, warning.hazard, rev.level, hazard_zh=hazard_zh)
        issuer_region = self.ctx["regions"].get(warning.sender_code[:6])
        if self.settings.sms_sign:
            sign = self.settings.sms_sign
        elif warning.sender:
            sign = texts.short_sign(warning.sender)
        else:
            sign = f"{texts.short_place(issuer_region.name)}防指" if issuer_region else ""
        is_lift = action.code == "lift"
        self._warning_ctx[k] = w = {
            "sender": warning.sender, "sign": sign, "forwarded_from": snap.get("forwarded_from") or "",
            "identifier": rev.identifier, "hazard": warning.hazard, "hazard_zh": hazard_zh, "level": rev.level,
            "level_zh": level_zh, "colour": LEVEL_COLOUR.get(rev.level, "#333"), "title": rev.title,
            # A lift revision's description is the reason it was lifted.
            "description": "" if is_lift else texts.tidy(rev.description), "reason": texts.tidy(rev.description)
            if is_lift else "", "instruction": rev.instruction, "guidance": texts.tidy(lines.duty),
            "public_guidance": texts.tidy(lines.public), "area": area, "area_full": rev.area_desc,
            "time": time, "time_spoken": texts.spoken_clock(rev.sent_at, now=now), "until": until,
            "sent_at": local_minute(rev.sent_at), "expires_at": local_minute(rev.expires_at),
            "action": action.verb, "action_code": action.code,
            "headline": texts.headline(action, time=time, area=area, hazard_zh=hazard_zh, level_zh=level_zh,
                                       until=until),
            "headline_spoken": texts.headline(action, time=texts.spoken_clock(rev.sent_at, now=now), area=area,
                                              hazard_zh=hazard_zh, level_zh=level_zh,
                                              until=texts.spoken_clock(rev.expires_at, now=now)),
            "repeat": int(snap.get("broadcast_repeat", 3)), "lift_note": self.settings.broadcast_lift_note,
        }
        return w

    def _templates_for(self, channel: str, kind: str, hazard: str, topic: str | None = None
                       ) -> tuple[list[Any], frozenset[str]]:
        k = (channel, kind, hazard, topic)
        found = self._templates.get(k)
        if found is None:
            parts = ("subject", "txt", "html") if channel == "email" else ("",)
            templates = [self.env.select_template(_template_names(channel, kind, hazard, p, topic)) for p in parts]
            used = frozenset().union(*(_variables(self.env, t.name) for t in templates))
            found = self._templates[k] = (templates, used)
        return found

    def _warning(self, warning_id: int) -> tuple[EarlyWarning, bool, str, str | None, str]:
        """(warning, active, hazard, purpose template, reply code): read once per warning, not per row (an ORM
        attribute costs as much as a dict lookup of a whole row's text)."""
        facts = self._warnings.get(warning_id)
        if facts is None:
            warning: EarlyWarning = self.ctx["warnings"][warning_id]
            purpose = (warning.policy or {}).get("purpose")
            facts = self._warnings[warning_id] = (
                warning, warning.state == "active", warning.hazard,
                purpose if purpose in PURPOSE_TEMPLATES else None, str(warning.reply_code))
        return facts

    def _clock(self, t: datetime | None) -> str:
        """texts.clock, once per deadline: a warning round's notices share a few."""
        text = self._clocks.get(t)
        if text is None:
            text = self._clocks[t] = texts.clock(t, now=self.now)
        return text

    def render(self, row: Any) -> Message:
        ctx = self.ctx
        row_id, warning_id, notice_id, kind, channel = row.id, row.warning_id, row.notice_id, row.kind, row.channel
        warning, active, hazard, purpose, warning_code = self._warning(warning_id)
        notice = ctx["notices"].get(notice_id) if notice_id else None
        if notice is not None:
            # Someone who has already answered hears an update as information: nothing more is asked of them.
            ack_required = bool(notice.requires_ack and kind != "cancel" and active and notice.state in _OPEN)
            token: str | None = self._sign(notice.id)
            if ctx["open_counts"].get(notice.person_id, 0) <= 1:
                reply_code = "1"
            else:
                digest_code = ctx["digests"].get(notice.digest_id) if notice.digest_id else None
                reply_code = str(digest_code) if digest_code else warning_code
            deadline = self._clock(notice.deadline)
        else:
            ack_required, token, reply_code, deadline = False, None, warning_code, ""
        topic = evacuation.topic(ctx["evacuation"], row=row, notice=notice) if (
            self._topics or kind in evacuation.TOPIC_KINDS) else None
        # A number check (drills/) is no warning: it has a text of its own, found like a topic's.
        own = topic.template if topic else purpose
        if topic is not None and topic.link_id is not None:
            # A shelter manager's page: its own token, under a key a notice's token cannot pass.
            token = shelter_pages.token_for(topic.link_id, link_key=self.key)
        try:
            templates, used = self._templates_for(channel, kind, hazard, own)
            failure = None
        except Exception as exc:  # noqa: BLE001 — a missing or broken template falls back to plain text
            templates, used, failure = [], frozenset(("person", "subject")), exc
        person = ctx["persons"].get(notice.person_id) if notice is not None else None
        key = (channel, kind, warning_id, row.revision, ack_required, token is not None, reply_code, deadline,
               (person.name, person.role) if person is not None and "person" in used else None,
               notice.escalation_of if notice is not None and "subject" in used else None,
               notice.digest_id if notice is not None and "digest" in used else None,
               row.region_code if channel == "broadcast" else None,
               (notice_id, row.region_code, topic.link_id) if topic else None)
        entry = self._texts.get(key)
        if entry is None:
            context = self._context(row, warning, notice, person, ack_required=ack_required, has_link=bool(token),
                                    reply_code=reply_code, deadline=deadline)
            context["evac"] = topic.values if topic else {}
            entry = self._texts[key] = self._entry(row, templates, context, failure, reply_code=reply_code,
                                                   deadline=deadline)
        body, subject, html, base_metadata, fields = entry
        # The text's metadata with this row's ids; the keys keep their order (placeholders in the shared dict).
        metadata = base_metadata.copy()
        metadata["notice_id"] = str(notice_id or "")
        metadata["outbox_id"] = str(row_id)
        if token:
            link = f"{self.base}/{topic.path if topic else 'a'}/{token}"
            body = body.replace(_LINK, link)
            html = html.replace(_LINK, link) if html else html
            if metadata.get("part.link"):
                metadata["part.link"] = link
        broadcast = None
        if channel == "broadcast":
            repeat = int(self._w(warning, ctx["revs"][(warning_id, row.revision)], kind)["repeat"])
            metadata["repeat"] = str(repeat)
            village = ctx["regions"].get(row.region_code) if row.region_code else None
            broadcast = BroadcastFields(
                zone=row.region_code or row.address, zone_name=village.name if village else "",
                town=(regions.ancestor_codes(village.path)[-2:-1] or [""])[0] if village else "",
                terminals=ctx.get("terminals", {}).get(row.region_code, ()), kind=kind, repeat=repeat,
                level=ctx["revs"][(warning_id, row.revision)].level)
        return Message(
            channel=channel, address=row.address, body=body, subject=subject, html=html,
            idempotency_key=getattr(row, "idempotency_key", None) or f"outbox-{row_id}",
            # The outbox id rides in the signed callback URL, so a receipt finds its row even when it
            # outruns the write of the provider id.
            status_callback=(f"{self.base}/webhooks/twilio/status?o={row_id}"
                             if channel in ("sms", "voice") else None),
            gather_action=(f"{self.base}/webhooks/twilio/voice/gather?t={token}"
                           if channel == "voice" and token and ack_required else None),
            metadata=metadata,
            # Domestic platforms send registered templates only: they get the parts, not the text.
            template=TemplateFields(**fields, token=token or "") if fields is not None else None,
            broadcast=broadcast,
            broadcast_repeat=broadcast.repeat if broadcast else None,
        )

    def _entry(self, row: Any, templates: list[Any], context: dict[str, Any], failure: Exception | None, *,
               reply_code: str, deadline: str
               ) -> tuple[str, str | None, str | None, dict[str, str], dict[str, str] | None]:
        """What every row of one text shares: body, subject, html, metadata (without the row's ids and link)
        and template fields (without the token)."""
        body, subject, html, segments, parts = self._texts_for(row, templates, context, failure)
        metadata = {"kind": row.kind, "warning_id": str(row.warning_id), "notice_id": "", "outbox_id": "", **parts}
        if segments is not None:
            metadata["segments"] = str(segments)
        fields = None
        if row.channel in ("sms", "voice"):
            w = context["w"]
            fields = {"sender": w["sign"], "area": w["area"], "hazard": w["hazard_zh"], "level": w["level_zh"],
                      "reply_code": reply_code, "deadline": deadline, "sent_at": w["sent_at"],
                      "instruction": w["guidance"]}
        return body, subject, html, metadata, fields

    def _context(self, row: Any, warning: EarlyWarning, notice: Any, person: Any, *, ack_required: bool,
                 has_link: bool, reply_code: str, deadline: str) -> dict[str, Any]:
        ctx = self.ctx
        rev: WarningRevision = ctx["revs"][(row.warning_id, row.revision)]
        w = self._w(warning, rev, row.kind)
        subject_ctx = {"name": "", "role_zh": "", "region": "", "place": "", "phone": ""}
        if notice is not None and notice.escalation_of:
            s = ctx["subjects"].get(notice.escalation_of)
            sp = ctx["persons"].get(s.person_id) if s else None
            if s and sp:
                place = self._place(s.region_code)
                subject_ctx = {"name": sp.name, "role_zh": ROLE_ZH.get(sp.role, sp.role), "region": place,
                               "place": place, "phone": sp.phone or ""}
        village = ctx["regions"].get(row.region_code) if row.channel == "broadcast" and row.region_code else None
        reply = f"请{deadline}前回{reply_code}确认" if ack_required and deadline else (
            f"请回{reply_code}确认" if ack_required else "")
        return {
            "kind": row.kind,
            "action": w["action"],
            "prefix": STATUS_PREFIX.get(warning.status, ""),
            "w": w,
            "person": {"name": person.name if person else "",
                       "role_zh": ROLE_ZH.get(person.role, person.role) if person else ""},
            "ack": {"required": ack_required, "link": _LINK if has_link else "", "reply_code": reply_code,
                    "deadline": deadline, "deadline_spoken": texts.spoken_clock(notice.deadline, now=self.now)
                    if notice else "", "reply": reply, "answered": bool(notice and notice.state == "acknowledged")},
            "subject": subject_ctx,
            "digest": self._digest(notice),
            "greeting": texts.public_greeting(village.name if village else ""),
            "village": village.name if village else "",
        }

    def _person_text(self, notice: Any) -> tuple[str, str, str]:
        """('横湖村第1网格张三', the same with the role (as spoken), '(13900000003)') for a notice's person."""
        p = self.ctx["persons"].get(notice.person_id) if notice is not None else None
        if p is None:
            return "", "", ""
        place, role = self._place(notice.region_code), ROLE_ZH.get(p.role, p.role)
        phone = (p.phone or "").removeprefix("+86")
        return f"{place}{p.name}", f"{place}{role}{p.name}", f"({phone})" if phone else ""

    def _digest(self, notice: Any) -> dict[str, Any]:
        """Who an escalation message is about: every silent person it covers (the people who were sent the
        warning, never the level between), and whom it was already reported to without an answer."""
        ctx = self.ctx
        if notice is None or notice.reason != "escalation":
            return {"count": 0, "listed": "", "spoken": "", "via": ""}
        members = ctx["members"].get(notice.digest_id) if notice.digest_id else None
        if not members:
            members = [notice]
        # Whoever has answered since (or had the silence end) drops out; an all-settled digest keeps its list.
        still = [m for m in members if m.state in ANSWERABLE_STATES] or members
        listed, spoken, via_seen = [], [], []
        for m in still:
            who, said, phone = self._person_text(ctx["subjects"].get(m.root_id or m.escalation_of))
            listed.append(who + phone)
            spoken.append(said)
            if m.escalation_of and m.escalation_of != m.root_id:
                _, via, via_phone = self._person_text(ctx["subjects"].get(m.escalation_of))
                if via and via + via_phone not in via_seen:
                    via_seen.append(via + via_phone)
        n = len(listed)
        more = f"等{n}人(名单见链接)" if n > DIGEST_LISTED else ""
        return {"count": n, "listed": "、".join(listed[:DIGEST_LISTED]) + more,
                "spoken": "、".join(spoken[:DIGEST_SPOKEN]) + (f"等{n}人" if n > DIGEST_SPOKEN else ""),
                "via": f"已上报{'、'.join(via_seen)},未获回复。" if via_seen else ""}

    def _texts_for(self, row: Any, templates: list[Any], context: dict[str, Any], failure: Exception | None
                   ) -> tuple[str, str | None, str | None, int | None, dict[str, str]]:
        w, ack = context["w"], context["ack"]
        description = w["description"]
        try:
            if failure is not None:
                raise failure
            if row.channel == "sms":
                # A keeper's text names as many of their households as fit without an extra segment.
                fitted = []
                for evac in evacuation.sms_variants(context.get("evac") or {}):
                    def render(desc: str, guide: str, evac: dict[str, Any] = evac) -> str:
                        c = {**context, "evac": evac, "w": {**w, "description": desc, "guidance": guide}}
                        return templates[0].render(c).strip().replace(_LINK, self._sample_link.replace("/", "\x03"))
                    # Measured with a link of the real length, in a form the template cannot have produced.
                    fitted.append(texts.fit(render, description=w["description"], guidance=w["guidance"],
                                            max_segments=self.settings.sms_max_segments))
                budget = max(self.settings.sms_max_segments, min(sms_segments(b) for b, _ in fitted))
                body, description = next(f for f in fitted if sms_segments(f[0]) <= budget)
                body = body.replace(self._sample_link.replace("/", "\x03"), _LINK)
                subject, html = None, None
            else:
                rendered = [t.render(context) for t in templates]
                if row.channel == "email":
                    body, subject, html = rendered[1].strip(), rendered[0].strip(), rendered[2]
                else:
                    body, subject, html = rendered[0].strip(), None, None
        except Exception as exc:  # noqa: BLE001 — any template failure falls back to plain text
            log.error("template_render_failed", outbox_id=row.id, warning_id=row.warning_id, channel=row.channel,
                      kind=row.kind, error=f"{type(exc).__name__}: {exc}")
            subject = (f"{context['prefix']}{w['sender']}{w['action']}{w['hazard_zh']}预警"
                       if row.channel == "email" else None)
            body, html = _fallback(context), None
        segments = sms_segments(body.replace(_LINK, self._sample_link)) if row.channel == "sms" else None
        parts = texts.TextParts(
            sign=w["sign"], status_prefix=context["prefix"], issuer=w["sender"], forwarded_from=w["forwarded_from"],
            time=w["time"], area=w["area"], hazard=w["hazard_zh"], level=w["level_zh"], action=w["action"],
            headline=w["headline"], description=description, guidance=w["guidance"], reply=ack["reply"],
            deadline=ack["deadline"] if ack["required"] else "", link=ack["link"] if ack["required"] else "",
            reason=w["reason"])
        return body, subject, html, segments, parts.as_metadata()


def _fallback(c: dict[str, Any]) -> str:
    w, ack = c["w"], c["ack"]
    text = f"{c['prefix']}【{w['sign']}】{w['headline']}。{w['reason'] or w['description']}"
    if ack["required"]:
        text += f"{ack['reply']} {ack['link']}"
    return text


@dataclass(frozen=True)
class Place:
    """A region as the renderer needs it (code, name, level, materialised path)."""

    code: str
    name: str
    level: str
    path: str


@dataclass(frozen=True)
class _PreviewRow:
    id: int
    warning_id: int
    notice_id: int | None
    revision: int
    kind: str
    channel: str
    address: str
    region_code: str | None
    idempotency_key: str


def render_preview(*, settings: Settings, warning: EarlyWarning, revision: WarningRevision,
                   previous: WarningRevision | None = None, kind: str, channel: str, now: datetime,
                   places: Sequence[Place], deadline: datetime | None = None, notice_state: str = "pending",
                   reply_code: str = "1", person_name: str = "张三", person_role: str = "village_responsible",
                   village_code: str | None = None) -> Message:
    """What one recipient would get, without a database: for the console preview (issue 12), golden tests
    and bench/texts.py. `places` are the targets and their ancestors; `village_code` picks the
    loudspeaker's village. The link is a real-length token for notice 1."""
    env = environment(str(settings.templates_dir), settings.environment == "development")
    wid = warning.id or 0
    revs = {(wid, revision.revision): revision}
    if previous is not None:
        revs[(wid, previous.revision)] = previous
    broadcast = channel == "broadcast"
    notice = None if broadcast else NoticeFacts(
        id=1, person_id=1, region_code=village_code or "", deadline=deadline,
        requires_ack=bool(warning.policy.get("ack_required", True)), reason="primary", escalation_of=None,
        state=notice_state)
    ctx = {"revs": revs, "warnings": {wid: warning}, "notices": {1: notice} if notice else {}, "subjects": {},
           "persons": {1: PersonFacts(1, person_name, person_role, "13900000000")},
           "open_counts": {} if reply_code == "1" else {1: 2}, "regions": {p.code: p for p in places},
           "evacuation": evacuation.Loaded(), "digests": {}, "members": {}}
    renderer = _Renderer(env, ctx, key=link_key(settings.secret_key.get_secret_value()),
                         base=settings.public_base_url, settings=settings, now=now)
    row = _PreviewRow(id=0, warning_id=wid, notice_id=None if broadcast else 1, revision=revision.revision,
                      kind=kind, channel=channel, address=village_code or "13900000000",
                      region_code=village_code if broadcast else None, idempotency_key="preview")
    return renderer.render(row)
