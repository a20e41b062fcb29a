"""The words a county office writes: sign, short times, places with their town, actions, fitting two SMS.

Pure functions over plain values, shared by the message renderer (messages.py), the console preview and
the SMS template mapping of domestic providers, so every surface says the same thing the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from channels.base import sms_segments
from warning_service.early_warning.identifiers import CHINA_TZ
from warning_service.early_warning.models import LEVEL_RANK

# UCS-2 units in N concatenated SMS parts (70 for one, 67 per part after that).
_UNITS = {1: 70}

# Issuer names end in one of these; what is left is the place the short sign is made from.
_ISSUER_SUFFIXES = ("防汛防台抗旱指挥部", "防汛抗旱指挥部", "防汛防旱指挥部", "森林草原防灭火指挥部",
                    "森林防灭火指挥部", "防汛指挥部", "指挥部")
_PLACE_SUFFIXES = ("自治县", "自治州", "特别行政区", "市", "县", "区", "省", "旗", "盟")
_COMMUNITY = re.compile(r"(社区|居委会|居民委员会|居委|街道)$")


def sms_units(segments: int) -> int:
    """UCS-2 characters that fit in `segments` SMS parts (Chinese texts): 70, 134, 201…"""
    return _UNITS.get(segments, 67 * segments)


def short_place(name: str) -> str:
    """'温岭市' → '温岭', '浙江省' → '浙江'; names of two characters or fewer are kept whole ('沙县')."""
    for suffix in _PLACE_SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def short_sign(issuer: str) -> str:
    """The 【sign】 an office puts on its SMS: '温岭市防汛防台抗旱指挥部' → '温岭防指'."""
    for suffix in _ISSUER_SUFFIXES:
        if issuer.endswith(suffix) and len(issuer) > len(suffix):
            return f"{short_place(issuer[: -len(suffix)])}防指"
    return issuer[:8]


def clock(t: datetime | None, *, now: datetime) -> str:
    """'18:39' for today (Beijing time), '7月2日18:39' for any other day."""
    if t is None:
        return ""
    local, today = t.astimezone(CHINA_TZ), now.astimezone(CHINA_TZ).date()
    hm = f"{local.hour:02d}:{local.minute:02d}"
    return hm if local.date() == today else f"{local.month}月{local.day}日{hm}"


def spoken_clock(t: datetime | None, *, now: datetime) -> str:
    """'18时39分' (a voice reads '18:39' badly), with '7月2日' when not today."""
    if t is None:
        return ""
    local, today = t.astimezone(CHINA_TZ), now.astimezone(CHINA_TZ).date()
    hm = f"{local.hour}时{local.minute:02d}分"
    return hm if local.date() == today else f"{local.month}月{local.day}日{hm}"


def place_name(names: Sequence[str]) -> str:
    """A place read from its town down, without separators or repeated names.

    ['松门镇', '南城村', '南城村第1网格'] → '松门镇南城村第1网格'."""
    out, previous = "", ""
    for name in names:
        out += name[len(previous):] if previous and name.startswith(previous) else name
        previous = name
    return out


def area_text(places: Sequence[Sequence[str]], *, limit: int = 2) -> str:
    """The warning's area for a short text: '松门镇南城村', '松门镇南城村、横湖村', '松门镇南城村等5地'.

    `places` holds each target's names from its town down (or the target's own name above town level)."""
    if not places:
        return ""
    parts: list[str] = []
    last_town = None
    for names in places[:limit]:
        if len(names) > 1 and names[0] == last_town:
            parts.append(place_name(names[1:]))
        else:
            parts.append(place_name(names))
        last_town = names[0]
    more = f"等{len(places)}地" if len(places) > limit else ""
    return "、".join(parts) + more


def public_greeting(region_name: str) -> str:
    """'各位居民' for a 社区/居委会, '各位村民' for a village."""
    return "各位居民" if _COMMUNITY.search(region_name) else "各位村民"


@dataclass(frozen=True)
class Action:
    """What a message does to the warning, in the words offices use."""

    code: str  # issue | update | upgrade | downgrade | extend | lift
    verb: str  # 发布 | 更新 | 升级为 | 降级为 | 延长 | 解除


def action_for(kind: str, *, msg_type: str, level: str, previous_level: str | None,
               expires_at: datetime | None, previous_expires_at: datetime | None) -> Action:
    """The action a revision carries: a level change beats an extension, which beats a plain update."""
    if kind == "cancel" or msg_type == "cancel":
        return Action("lift", "解除")
    if msg_type != "update" or kind not in ("update",):
        return Action("issue", "发布")
    if previous_level and LEVEL_RANK[level] > LEVEL_RANK[previous_level]:
        return Action("upgrade", "升级为")
    if previous_level and LEVEL_RANK[level] < LEVEL_RANK[previous_level]:
        return Action("downgrade", "降级为")
    if expires_at and (previous_expires_at is None or expires_at > previous_expires_at):
        return Action("extend", "延长")
    return Action("update", "更新")


def headline(action: Action, *, time: str, area: str, hazard_zh: str, level_zh: str, until: str = "") -> str:
    """'18:39发布松门镇南城村暴雨红色预警', '18:39松门镇南城村山洪预警升级为红色', '18:39解除…'."""
    if action.code in ("upgrade", "downgrade"):
        return f"{time}{area}{hazard_zh}预警{action.verb}{level_zh}"
    if action.code == "extend":
        return f"{time}{action.verb}{area}{hazard_zh}{level_zh}预警" + (f"至{until}" if until else "")
    return f"{time}{action.verb}{area}{hazard_zh}{level_zh}预警"


def tidy(line: str) -> str:
    """A guidance or description line as it is printed: no item number, no trailing ';', ends in '。'."""
    line = re.sub(r"^\(?[0-9一二三四五六七八九十]+[.、)）]\s*", "", line.strip())
    line = line.rstrip(";；,，、 ")
    return line + "。" if line and line[-1] not in "。！!？?…" else line


@dataclass(frozen=True)
class TextParts:
    """The pieces of one message, kept apart so a provider template (issue 14) or a preview can use them."""

    sign: str
    status_prefix: str
    issuer: str
    forwarded_from: str
    time: str
    area: str
    hazard: str
    level: str
    action: str
    headline: str
    description: str
    guidance: str
    reply: str
    deadline: str
    link: str
    reason: str = ""

    def as_metadata(self) -> dict[str, str]:
        """Flat 'part.<name>' keys for Message.metadata (which holds strings only)."""
        return {f"part.{k}": v for k, v in asdict(self).items()}


# Placeholders rendered in place of the two parts that may be shortened; measured, then filled.
DESC_MARK = "\x01"
GUIDE_MARK = "\x02"


def fit(render: Callable[[str, str], str], *, description: str, guidance: str, max_segments: int) -> tuple[str, str]:
    """Render with the description and guidance shortened just enough to fit `max_segments` SMS.

    `render(description, guidance)` is called once with the markers to measure everything else (the reply
    instruction and link are never shortened); the guidance keeps priority over the description. Returns
    (text, description as printed)."""
    skeleton = render(DESC_MARK, GUIDE_MARK)
    fixed = skeleton.replace(DESC_MARK, "").replace(GUIDE_MARK, "")
    full = skeleton.replace(DESC_MARK, description).replace(GUIDE_MARK, guidance)
    if sms_segments(full) <= max_segments:
        return full, description
    room = sms_units(max_segments) - len(fixed.encode("utf-16-le")) // 2
    guide = _clip(guidance, room)
    desc = _clip(description, room - len(guide))
    return skeleton.replace(DESC_MARK, desc).replace(GUIDE_MARK, guide), desc


def _clip(text: str, room: int) -> str:
    if room <= 0:
        return ""
    if len(text) <= room:
        return text
    return text[: room - 1] + "…" if room > 1 else ""
