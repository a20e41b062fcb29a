"""The mobile page behind an acknowledgment link: what it shows, and rendering it from templates/ack/.

The page speaks only of the one notice its token is bound to: the warning, the area the person answers
for, their own answer and feedback — never anyone else's, except that an escalation message's page lists
the silent people it reported (in the recipient's own area: reaching them is what it asks for).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from warning_service.acknowledgment.feedback import get_feedback
from warning_service.acknowledgment.models import Acknowledgment, Feedback
from warning_service.config import Settings
from warning_service.early_warning.messages import local_minute
from warning_service.early_warning.models import HAZARD_ZH, LEVEL_COLOUR, LEVEL_ZH, EarlyWarning, WarningState
from warning_service.notice.models import Notice, NoticeReason, NoticeState
from warning_service.person.models import Person
from warning_service.region.models import Region

# "1. ", "2、", "（3）" at the start of a guidance line: the page numbers the list itself.
_NUMBERING = re.compile(r"^\s*[(（]?\s*(?:\d+|[一二三四五六七八九十]+)\s*(?:[.、．:：]|[)）])\s*")
PATH_ZH = {"link": "链接确认", "sms_reply": "短信回复", "voice_key": "电话按键", "proxy": "代为确认"}
STATUS_PREFIX = {"exercise": "【演练】", "test": "【测试】"}
# Pages carry a secret in their URL: never let it leak to another site, a cache or a search engine.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


@dataclass
class LinkView:
    notice: Notice
    warning: EarlyWarning
    region_name: str
    ack: Acknowledgment | None
    feedback: Feedback | None
    silent: list[dict[str, Any]] | None = None  # an escalation's silent people, as they stand now

    @property
    def ended_at(self) -> datetime | None:
        """When the warning stopped (lifted or expired), or None while it is active."""
        w = self.warning
        if w.state == WarningState.lifted:
            return w.lifted_at or w.updated_at
        if w.state == "expired":
            return w.expires_at or w.updated_at
        return None

    def gone(self, now: datetime, grace_hours: int) -> bool:
        """The link outlived its warning by more than the grace period."""
        ended = self.ended_at
        return ended is not None and now > ended + timedelta(hours=grace_hours)

    @property
    def state(self) -> str:
        """acknowledged | lifted | expired | closed | open — what the page shows."""
        if self.notice.state == NoticeState.acknowledged:
            return "acknowledged"
        if self.warning.state in ("lifted", "expired"):
            return self.warning.state
        if self.notice.state == "closed":
            return "closed"
        return "open"


async def load_view(session: AsyncSession, *, notice_id: int) -> LinkView | None:
    row = (await session.execute(
        select(Notice, EarlyWarning, Region.name)
        .join(EarlyWarning, EarlyWarning.id == Notice.warning_id)
        .join(Region, Region.code == Notice.region_code)
        .where(Notice.id == notice_id))).first()
    if row is None:
        return None
    notice, warning, region_name = row
    ack = (await session.execute(select(Acknowledgment).where(
        Acknowledgment.notice_id == notice_id, Acknowledgment.round == notice.round))).scalar_one_or_none()
    return LinkView(notice=notice, warning=warning, region_name=region_name, ack=ack,
                    feedback=await get_feedback(session, notice_id),
                    silent=await _silent(session, notice) if notice.reason == NoticeReason.escalation else None)


async def _silent(session: AsyncSession, notice: Notice) -> list[dict[str, Any]]:
    """Everyone the escalation message of this notice listed (its digest), and whether they answered since."""
    member, root = aliased(Notice), aliased(Notice)
    mine = member.digest_id == notice.digest_id if notice.digest_id else member.id == notice.id
    rows = (await session.execute(
        select(Person.name, Person.phone, Region.name, root.state)
        .select_from(member).join(root, root.id == func.coalesce(member.root_id, member.escalation_of))
        .join(Person, Person.id == root.person_id).join(Region, Region.code == root.region_code)
        .where(mine).order_by(member.id))).all()
    return [{"name": name, "phone": phone or "", "region": region, "answered": state == NoticeState.acknowledged}
            for name, phone, region, state in rows]


def _warning_context(w: EarlyWarning) -> dict[str, Any]:
    return {
        "prefix": STATUS_PREFIX.get(w.status, ""), "sender": w.sender, "title": w.title,
        "hazard_zh": HAZARD_ZH.get(w.hazard, w.hazard), "level_zh": LEVEL_ZH.get(w.level, w.level),
        "level": w.level, "colour": LEVEL_COLOUR.get(w.level, "#333333"),
        # Yellow is too light for white text.
        "text_colour": "#1f2937" if w.level == "yellow" else "#ffffff",
        "area": w.area_desc, "issued_at": local_minute(w.issued_at), "description": w.description,
        "instruction_lines": [_NUMBERING.sub("", ln).strip() for ln in (w.instruction or "").splitlines()
                              if ln.strip()],
        "expires_at": local_minute(w.expires_at), "lifted_at": local_minute(w.lifted_at),
    }


def page_context(view: LinkView, *, token: str, now: datetime, flash: str | None = None) -> dict[str, Any]:
    n, ack, fb = view.notice, view.ack, view.feedback
    return {
        "token": token,
        "w": _warning_context(view.warning),
        "region_name": view.region_name,
        "state": view.state,
        "requires_ack": n.requires_ack,
        "deadline": local_minute(n.deadline),
        "overdue": bool(n.deadline and now > n.deadline),
        "ack": {"at": local_minute(ack.acknowledged_at), "late": ack.late,
                "path_zh": PATH_ZH.get(ack.path, ack.path)} if ack else None,
        "feedback": {"at_post": fb.at_post, "villages_affected": fb.villages_affected,
                     "people_evacuated": fb.people_evacuated, "note": fb.note or "",
                     "updated_at": local_minute(fb.updated_at)} if fb else None,
        "flash": flash,
        "silent": view.silent,
    }


def json_view(view: LinkView, *, now: datetime) -> dict[str, Any]:
    """The same page as data, for apps that prefer JSON."""
    w, n, ack = view.warning, view.notice, view.ack
    return {
        "state": view.state,
        "warning": {"sender": w.sender, "title": w.title, "hazard": w.hazard, "level": w.level,
                    "status": w.status, "area": w.area_desc, "issued_at": w.issued_at.isoformat(),
                    "description": w.description, "instruction": w.instruction,
                    "expires_at": w.expires_at.isoformat() if w.expires_at else None,
                    "lifted_at": w.lifted_at.isoformat() if w.lifted_at else None},
        "region_name": view.region_name,
        "requires_ack": n.requires_ack,
        "deadline": n.deadline.isoformat() if n.deadline else None,
        "acknowledgment": {"acknowledged_at": ack.acknowledged_at.isoformat(), "late": ack.late,
                           "path": ack.path} if ack else None,
        "feedback": ({"at_post": view.feedback.at_post, "villages_affected": view.feedback.villages_affected,
                      "people_evacuated": view.feedback.people_evacuated, "note": view.feedback.note}
                     if view.feedback else None),
    }


@lru_cache(maxsize=4)
def environment(templates_dir: str) -> SandboxedEnvironment:
    return SandboxedEnvironment(loader=FileSystemLoader(templates_dir), undefined=StrictUndefined,
                                autoescape=True, trim_blocks=True, lstrip_blocks=True)


def render(settings: Settings, name: str, context: dict[str, Any], *, status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    html = environment(str(settings.templates_dir)).get_template(f"ack/{name}").render(context)
    return HTMLResponse(html, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})})


MESSAGES = {
    404: ("链接无效", "这个确认链接无效或已被更改。请使用短信中的完整链接,或直接回复短信 1 确认收到。"),
    410: ("链接已过期", "该预警已解除或失效,确认链接已过期。如需补充情况,请联系当地防汛值班室。"),
    429: ("请求过于频繁", "来自您所在网络的无效链接请求过多,请一分钟后再试,或直接回复短信 1 确认收到。"),
}


def message_page(settings: Settings, status_code: int, *, headers: dict[str, str] | None = None
                 ) -> HTMLResponse:
    title, text = MESSAGES[status_code]
    return render(settings, "message.html.j2", {"title": title, "text": text, "code": status_code},
                  status_code=status_code, headers=headers)
