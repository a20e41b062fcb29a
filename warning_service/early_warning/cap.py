"""OASIS CAP 1.2 out (GB/T 35965.1 follows it) and in (from upstream release platforms), parsed safely."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from lxml import etree

from warning_service.early_warning.identifiers import CHINA_TZ
from warning_service.early_warning.models import HAZARD_ALIASES, HAZARD_ZH, EarlyWarning, WarningRevision
from warning_service.errors import Invalid

NS = "urn:oasis:names:tc:emergency:cap:1.2"
XSD = Path(__file__).resolve().parent / "schema" / "CAP-v1.2-schema.xsd"
GEOCODE_NAME = "GB/T 2260"
SEVERITY = {"red": "Extreme", "orange": "Severe", "yellow": "Moderate", "blue": "Minor"}
URGENCY = {"red": "Immediate", "orange": "Immediate", "yellow": "Expected", "blue": "Expected"}
LEVEL_OF_SEVERITY = {v: k for k, v in SEVERITY.items()}
LEVEL_NAMES = {"red": "red", "orange": "orange", "yellow": "yellow", "blue": "blue", "红色": "red", "橙色": "orange",
               "黄色": "yellow", "蓝色": "blue", "Ⅰ级": "red", "Ⅱ级": "orange", "Ⅲ级": "yellow", "Ⅳ级": "blue"}
CATEGORY = {"geological": "Geo", "forest_fire": "Fire"}  # everything else is meteorological/hydrological
RESPONSE = {"red": "Evacuate", "orange": "Evacuate", "yellow": "Prepare", "blue": "Monitor"}
# Longest names first, so '低温雨雪冰冻' is not read as a shorter name it contains.
HAZARD_BY_ZH = dict(sorted({**{v: k for k, v in HAZARD_ZH.items()}, **HAZARD_ALIASES}.items(),
                           key=lambda kv: -len(kv[0])))


def cap_time(t: datetime) -> str:
    return t.astimezone(CHINA_TZ).strftime("%Y-%m-%dT%H:%M:%S+08:00")


def to_cap(warning: EarlyWarning, rev: WarningRevision, *, references: list[str], geocodes: list[str],
           note: str | None = None) -> bytes:
    """The CAP 1.2 alert for one revision of a warning (Alert, Update or Cancel); `note` names who drafted
    and who signed off a warning issued under 审核签发 ("拟稿:…;签发:…")."""
    e = etree.Element(f"{{{NS}}}alert", nsmap={None: NS})

    def sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
        el = etree.SubElement(parent, f"{{{NS}}}{tag}")
        if text is not None:
            el.text = text
        return el

    sub(e, "identifier", rev.identifier)
    sub(e, "sender", warning.sender_code)
    sub(e, "sent", cap_time(rev.sent_at))
    sub(e, "status", warning.status.capitalize())
    sub(e, "msgType", rev.msg_type.capitalize())
    sub(e, "scope", "Public")
    if note:
        sub(e, "note", note)
    if references:
        sub(e, "references", " ".join(references))
    info = sub(e, "info")
    sub(info, "language", "zh-CN")
    sub(info, "category", CATEGORY.get(warning.hazard, "Met"))
    sub(info, "event", HAZARD_ZH.get(warning.hazard, warning.hazard))
    sub(info, "responseType", "AllClear" if rev.msg_type == "cancel" else RESPONSE[rev.level])
    sub(info, "urgency", "Past" if rev.msg_type == "cancel" else URGENCY[rev.level])
    sub(info, "severity", SEVERITY[rev.level])
    sub(info, "certainty", "Likely")
    code = sub(info, "eventCode")
    sub(code, "valueName", "hazard")
    sub(code, "value", warning.hazard)
    sub(info, "effective", cap_time(warning.effective_at))
    if rev.expires_at:
        sub(info, "expires", cap_time(rev.expires_at))
    sub(info, "senderName", warning.sender)
    sub(info, "headline", rev.title)
    sub(info, "description", rev.description)
    sub(info, "instruction", rev.instruction)
    param = sub(info, "parameter")
    sub(param, "valueName", "level")
    sub(param, "value", rev.level)
    area = sub(info, "area")
    sub(area, "areaDesc", rev.area_desc)
    for g in geocodes:
        gc = sub(area, "geocode")
        sub(gc, "valueName", GEOCODE_NAME)
        sub(gc, "value", g)
    return etree.tostring(e, xml_declaration=True, encoding="UTF-8", pretty_print=True)


@lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD), _safe_parser()))


def _safe_parser() -> etree.XMLParser:
    # No DTDs, no entity expansion, no network: billion-laughs and XXE have nothing to work with.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_pis=True)


@dataclass
class ParsedCap:
    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    references: list[str]
    hazard: str
    level: str
    sender_name: str | None
    headline: str | None
    description: str
    instruction: str | None
    effective: datetime | None
    expires: datetime | None
    geocodes: list[str]
    area_desc: str


def _invalid(en: str, zh: str, *, line: int | None = None, field: str = "cap") -> Invalid:
    where = f"line {line}: " if line else ""
    where_zh = f"第 {line} 行:" if line else ""
    return Invalid(f"CAP {where}{en}", f"CAP {where_zh}{zh}", field=field, line=line)


def parse_cap(raw: bytes) -> ParsedCap:
    """Parse and schema-validate a CAP 1.2 alert; any problem is Invalid naming what and where."""
    if len(raw) > 1_000_000:
        raise _invalid("document larger than 1 MB", "文档超过 1 MB")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw:
        # UTF-16/32 would hide a DTD from the byte check below (and CAP feeds are UTF-8).
        raise _invalid("CAP documents must be UTF-8 (UTF-16/32 and NUL bytes are refused)",
                       "CAP 文档须为 UTF-8 编码(不接受 UTF-16/32 或空字符)")
    head = raw[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in raw.upper():
        raise _invalid("DTDs and entities are not accepted", "不接受 DTD 或实体声明")
    try:
        doc = etree.fromstring(raw, _safe_parser())
    except etree.XMLSyntaxError as exc:
        raise _invalid(f"malformed XML: {exc.msg}", f"XML 格式错误:{exc.msg}", line=exc.lineno) from None
    schema = _schema()
    try:
        valid = schema.validate(doc)
    except etree.Error as exc:
        raise _invalid(f"cannot be validated: {exc}", "无法按 CAP 1.2 规范校验") from None
    if not valid:
        err = schema.error_log.last_error
        raise _invalid(f"does not follow the CAP 1.2 schema: {err.message}",
                       f"不符合 CAP 1.2 规范:{err.message}", line=err.line)

    def text(el: etree._Element | None, tag: str) -> str | None:
        if el is None:
            return None
        found = el.find(f"{{{NS}}}{tag}")
        return found.text.strip() if found is not None and found.text else None

    infos = doc.findall(f"{{{NS}}}info")
    info = next((i for i in infos if (text(i, "language") or "en-US").lower().startswith("zh")),
                infos[0] if infos else None)
    if info is None:
        raise _invalid("an <info> block is required", "缺少 <info> 信息块", field="info")
    event = text(info, "event") or ""
    codes = {text(c, "valueName"): text(c, "value") for c in info.findall(f"{{{NS}}}eventCode")}
    hazard = HAZARD_BY_ZH.get(event) or (event if event in HAZARD_ZH else None) or next(
        (v for v in codes.values() if v in HAZARD_ZH), None) or next(
        (h for zh, h in HAZARD_BY_ZH.items() if zh in event), None)
    if hazard is None:
        raise _invalid(f"unknown event {event!r}", f"无法识别的预警类别 {event!r}", field="event")
    params = {text(p, "valueName"): text(p, "value") for p in info.findall(f"{{{NS}}}parameter")}
    level = next((LEVEL_NAMES[v] for k, v in params.items() if k in ("level", "预警级别", "alertLevel")
                  and v in LEVEL_NAMES), None) or LEVEL_OF_SEVERITY.get(text(info, "severity") or "")
    if level is None:
        raise _invalid("cannot tell the level (parameter 'level' or severity)", "无法确定预警级别", field="severity")
    geocodes: list[str] = []
    descs: list[str] = []
    for area in info.findall(f"{{{NS}}}area"):
        descs.append(text(area, "areaDesc") or "")
        geocodes += [text(g, "value") or "" for g in area.findall(f"{{{NS}}}geocode")]
    if not geocodes:
        raise _invalid("no <geocode> with a division code in <area>", "<area> 中没有行政区划代码 <geocode>",
                       field="area")
    refs = (text(doc, "references") or "").split()
    return ParsedCap(
        identifier=text(doc, "identifier") or "", sender=text(doc, "sender") or "",
        sent=datetime.fromisoformat(text(doc, "sent") or ""), status=(text(doc, "status") or "").lower(),
        msg_type=(text(doc, "msgType") or "").lower(), references=refs, hazard=hazard, level=level,
        sender_name=text(info, "senderName"), headline=text(info, "headline"),
        description=text(info, "description") or text(info, "headline") or event,
        instruction=text(info, "instruction"),
        effective=_dt(text(info, "effective")), expires=_dt(text(info, "expires")),
        geocodes=[g for g in geocodes if g], area_desc="、".join(d for d in descs if d),
    )


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def division_candidates(code: str) -> list[str]:
    """'331081000000' → ['331081000000', '331081'], '330000' → ['330000', '33'], as national codes pad zeros."""
    out = [code]
    c = code
    if len(c) == 12 and c.endswith("000"):
        c = c[:9] if not c.endswith("000000") else c[:6]
        out.append(c)
    if len(c) == 9 and c.endswith("000"):
        c = c[:6]
        out.append(c)
    if len(c) == 6 and c.endswith("00"):
        c = c[:2] if c.endswith("0000") else c[:4]
        out.append(c)
    return out
