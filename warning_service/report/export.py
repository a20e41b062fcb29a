"""CSV and XLSX exports of a warning report, with the Chinese headers auditors file them under.

Choice of rows: the CSV is one row per primary notice (叫应明细) by default — the record an auditor
checks a rate against, one person per line, ordered down the region tree; `rows=regions` gives one row
per region of the roll-up (县 → 乡镇 → 村 → 网格) instead, and `rows=missing` only the people who never
answered. The workbook carries all of them as sheets (汇总, 分区统计, 叫应明细, 未叫应名单, 渠道统计).
Times are Beijing time (UTC+8), as the offices keep them. The CSV is UTF-8 with a BOM so Excel opens
the Chinese correctly.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from openpyxl import Workbook
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.report.missing import ACK_PATH_ZH, CHANNEL_ZH, STATUS_ZH, iter_notices
from warning_service.report.params import CST
from warning_service.report.service import Scoped, warning_report

YES, NO = "是", "否"
_PHONE = re.compile(r"^\+\d{6,16}$")


def local(t: datetime | None) -> str:
    return t.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S") if t else ""


def cell(v: Any) -> Any:
    """Text that a spreadsheet would run as a formula is quoted (CSV/formula injection)."""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") and not _PHONE.match(v):
        return "'" + v
    return v


def pct(v: float | None) -> str:
    return "" if v is None else f"{v * 100:.1f}%"


NOTICE_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("通知编号", lambda r: r["notice_id"]),
    ("区划代码", lambda r: r["region_code"]),
    ("区划路径", lambda r: r["region_path"]),
    ("姓名", lambda r: r["name"]),
    ("角色", lambda r: r["role_zh"]),
    ("电话", lambda r: r["phone"] or ""),
    ("需叫应", lambda r: YES if r["requires_ack"] else NO),
    ("状态", lambda r: r["state_zh"]),
    ("已叫应", lambda r: YES if r["acknowledged"] else NO),
    ("叫应时间", lambda r: local(r["acknowledged_at"])),
    ("叫应用时(秒)", lambda r: r["seconds_to_ack"] if r["seconds_to_ack"] is not None else ""),
    ("超时叫应", lambda r: "" if r["late"] is None else (YES if r["late"] else NO)),
    ("叫应方式", lambda r: ACK_PATH_ZH.get(r["ack_path"] or "", r["ack_path"] or "")),
    ("代叫应方式", lambda r: r["proxy_method"] or ""),
    ("叫应期限", lambda r: local(r["deadline"])),
    ("送达时间", lambda r: local(r["delivered_at"])),
    ("消息数", lambda r: r["messages"]),
    ("发送次数", lambda r: r["attempts"]),
    ("最后渠道", lambda r: CHANNEL_ZH.get(r["last_channel"] or "", r["last_channel"] or "")),
    ("最后投递状态", lambda r: STATUS_ZH.get(r["last_status"] or "", r["last_status"] or "")),
    ("最后错误码", lambda r: r["last_error"] or ""),
    ("升级叫应次数", lambda r: r["escalations"]),
    ("升级后应答数", lambda r: r["escalations_answered"]),
]

COUNT_COLUMNS = [("通知人数", "recipients"), ("应叫应", "required"), ("已触达", "reached"),
                 ("已送达", "delivered"), ("已叫应", "acknowledged"), ("按时叫应", "on_time"),
                 ("超时叫应", "late"), ("代叫应", "proxy"), ("未叫应", "never"),
                 ("其中待叫应", "waiting"), ("其中超时未叫应", "timed_out"), ("其中已结束未叫应", "closed")]
RATE_COLUMNS = [("叫应率", "rate"), ("按时叫应率", "on_time_rate")]
LEVEL_ZH = {"county": "县(市、区)", "town": "乡镇(街道)", "village": "村(社区)", "grid": "网格"}
REGION_HEADER = (["层级", "区划代码", "区划名称", "上级区划代码"] + [h for h, _ in COUNT_COLUMNS]
                 + [h for h, _ in RATE_COLUMNS] + ["本级人员应叫应", "本级人员已叫应"])


def region_rows(report: dict[str, Any]) -> list[list[Any]]:
    out = []
    for n in report["rollup"]["nodes"]:
        sub, own = n["subtree"], n["own"]
        out.append([LEVEL_ZH.get(n["level"], n["level"]), n["code"], cell(n["name"]), n["parent_code"] or ""]
                   + [sub[k] for _, k in COUNT_COLUMNS] + [pct(sub[k]) for _, k in RATE_COLUMNS]
                   + [own["required"], own["acknowledged"]])
    return out


def notice_row(r: dict[str, Any]) -> list[Any]:
    return [cell(f(r)) for _, f in NOTICE_COLUMNS]


def filename(scoped: Scoped, ext: str) -> dict[str, str]:
    w = scoped.warning
    ascii_name = f"warning-{w.id}-{scoped.region.code}.{ext}"
    zh = f"叫应统计-{w.title}-{scoped.region.name}.{ext}"
    return {"Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(zh)}"}


async def csv_chunks(session: AsyncSession, *, scoped: Scoped, rows: str, now: datetime
                     ) -> AsyncIterator[bytes]:
    """The CSV, a page of notices at a time (UTF-8 with BOM)."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")

    def flush() -> bytes:
        data = buf.getvalue().encode("utf-8")
        buf.seek(0)
        buf.truncate()
        return data

    yield "\ufeff".encode()
    if rows == "regions":
        report = await warning_report(session, scoped=scoped, now=now, rollup="grid", missing_limit=0)
        out.writerow(REGION_HEADER)
        out.writerows(region_rows(report))
        yield flush()
        return
    out.writerow([h for h, _ in NOTICE_COLUMNS])
    async for page in iter_notices(session, scoped=scoped, only_missing=rows == "missing"):
        out.writerows(notice_row(r) for r in page)
        yield flush()
    yield flush()


async def workbook(session: AsyncSession, *, scoped: Scoped, now: datetime) -> bytes:
    """The whole report as an .xlsx (write-only sheets, filled a page at a time off the event loop)."""
    report = await warning_report(session, scoped=scoped, now=now, rollup="grid", missing_limit=0)
    wb = Workbook(write_only=True)
    _summary_sheet(wb.create_sheet("汇总"), report)
    regions = wb.create_sheet("分区统计")
    regions.append(REGION_HEADER)
    for row in region_rows(report):
        regions.append(row)
    notices = wb.create_sheet("叫应明细")
    missing = wb.create_sheet("未叫应名单")
    header = [h for h, _ in NOTICE_COLUMNS]
    notices.append(header)
    missing.append(header)

    def write(page: list[dict[str, Any]]) -> None:
        for r in page:
            row = notice_row(r)
            notices.append(row)
            if r["requires_ack"] and not r["acknowledged"]:
                missing.append(row)

    async for page in iter_notices(session, scoped=scoped):
        await asyncio.to_thread(write, page)
    channels = wb.create_sheet("渠道统计")
    statuses = list(STATUS_ZH)
    channels.append(["渠道", "消息数", "发送次数"] + [STATUS_ZH[s] for s in statuses] + ["送达率"])
    for ch in report["by_channel"]:
        channels.append([CHANNEL_ZH.get(ch["channel"], ch["channel"]), ch["messages"], ch["attempts"]]
                        + [ch["by_status"].get(s, 0) for s in statuses] + [pct(ch["delivered_rate"])])
    bio = io.BytesIO()
    await asyncio.to_thread(wb.save, bio)
    return bio.getvalue()


def _summary_sheet(ws: Any, report: dict[str, Any]) -> None:
    w, t, tta, esc = report["warning"], report["totals"], report["time_to_ack"], report["escalations"]
    ws.append(["项目", "值"])
    for label, value in [
        ("预警标识", w["identifier"]), ("标题", cell(w["title"])), ("发布单位", cell(w["sender"])),
        ("灾种", w["hazard_zh"]), ("级别", w["level_zh"]), ("性质", w["status_zh"]),
        ("发布时间", local(w["issued_at"])),
        ("统计范围", f"{report['region']['name']}({report['region']['code']})"),
        ("统计时间", local(report["generated_at"])), ("叫应期限(秒)", w["ack_deadline_seconds"] or ""),
    ]:
        ws.append([label, value])
    for label, key in COUNT_COLUMNS:
        ws.append([label, t[key]])
    for label, key in RATE_COLUMNS:
        ws.append([label, pct(t[key])])
    ws.append(["叫应用时中位数(秒)", tta["p50"] if tta["p50"] is not None else ""])
    ws.append(["叫应用时90分位(秒)", tta["p90"] if tta["p90"] is not None else ""])
    ws.append(["叫应用时最长(秒)", tta["max"] if tta["max"] is not None else ""])
    ws.append(["B岗叫应(发起/应答)", f"{esc['deputy']['fired']}/{esc['deputy']['answered']}"])
    ws.append(["逐级上报(发起/应答)", f"{esc['escalation']['fired']}/{esc['escalation']['answered']}"])
