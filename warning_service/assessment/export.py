"""The 通报 as a workbook an office files: one sheet per section (real warnings, exercises), typed cells."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from warning_service.report.export import Col, Sheet, book, local


def _ind(key: str):
    return lambda r: r["indicators"][key]


TOWN_COLUMNS = [
    Col("名次", lambda r: r["rank"], "int", 6), Col("区划代码", lambda r: r["code"], "code", 14),
    Col("名称", lambda r: r["name"], "text", 16), Col("得分", lambda r: r["score"], "float", 8),
    Col("应叫应", lambda r: r["required"], "int"), Col("已叫应", lambda r: r["acknowledged"], "int"),
    Col("按时叫应", lambda r: r["on_time"], "int"), Col("代叫应", lambda r: r["proxy"], "int"),
    Col("未叫应", lambda r: r["never"], "int"), Col("已反馈", lambda r: r["feedback_given"], "int"),
    Col("叫应率", _ind("answer"), "pct"), Col("按时叫应率", _ind("on_time"), "pct"),
    Col("非代叫应占比", _ind("proxy"), "pct"), Col("反馈率", _ind("feedback"), "pct"),
    Col("转移任务", lambda r: r["evac_households"], "int"), Col("已转移", lambda r: r["evac_moved"], "int"),
    Col("转移完成率", _ind("evacuation"), "pct"),
]


def workbook(report: dict[str, Any], *, now: datetime) -> bytes:
    weights = "、".join(f"{w['zh']} {w['share'] * 100:.0f}%" for w in report["weights"].values())
    buf = io.BytesIO()
    with book(buf, now=now) as wb:
        for sec in report["sections"].values():
            title = f"{report['region']['name']}{report['period']['label']}预警叫应通报({sec['status_zh']})"
            sub = f"权重:{weights};预警 {sec['warnings']} 次;导出时间 {local(now)}"
            sheet = Sheet(wb, sec["status_zh"], TOWN_COLUMNS, title=title, subtitle=sub, sample=sec["towns"][:50])
            for r in sec["towns"]:
                sheet.append(r)
            sheet.close()
    return buf.getvalue()
