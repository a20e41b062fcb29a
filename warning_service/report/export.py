"""CSV and XLSX exports of a warning report, with the Chinese headers auditors file them under.

Choice of rows: the CSV is one row per primary notice (叫应明细) by default — the record an auditor
checks a rate against, one person per line, ordered down the region tree, with the answer, the proxy
method and note and the 响应反馈; `rows=regions` gives one row per region of the roll-up, `rows=missing`
only the people who never answered, `rows=feedback` the feedback sums per region (most evacuated
first) and `rows=proxy` every proxy answer. The workbook carries all of them as sheets.

The workbook is what an office files: typed cells (times as Beijing-time dates, rates as percentages,
counts as numbers, codes and phones as text), a title row naming the warning and the export time, a
bold frozen header with a filter, widths fitted to Chinese text, A4 landscape with the header repeated.
No text ever becomes a formula: every string cell is written as a string with Excel's quote prefix, so
an identifier or a note that starts with "=" stays text even when someone edits the cell. The CSV is
UTF-8 with a BOM and quotes text that a spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import IO, Any
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service import labels, xlsx
from warning_service.errors import DomainError
from warning_service.labels import yes_no, zh
from warning_service.region.scope import Scope
from warning_service.report import feedback as fb
from warning_service.report import queries as q
from warning_service.report.missing import iter_notices
from warning_service.report.params import CST
from warning_service.report.queries import R
from warning_service.report.scope import Scoped
from warning_service.report.service import report_and_rollup

_PHONE = re.compile(r"^\+\d{6,16}$")
ROW_CHOICES = ("notices", "regions", "missing", "feedback", "proxy")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PAGE = 5000  # rows built and written at a time
# Told the rows written so far and the rows expected (0 when not known in advance).
ProgressFn = Callable[[int, int], Awaitable[Any]]


class UseExportJob(DomainError):
    """An export too large to build inside a request."""

    status_code = 409
    code = "use_export_job"


def local(t: datetime | None) -> str:
    return t.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S") if t else ""


def cell(v: Any) -> Any:
    """Text that a spreadsheet would run as a formula is quoted (CSV/formula injection)."""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") and not _PHONE.match(v):
        return "'" + v
    return v


def pct(v: float | None) -> str:
    return "" if v is None else f"{v * 100:.1f}%"


def text_width(value: Any) -> int:
    """Display width in character cells: a CJK character takes two."""
    s = local(value) if isinstance(value, datetime) else ("" if value is None else str(value))
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in s)


# --- column specifications --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Col:
    """One column: header, value getter, kind (text | code | int | float | time | pct, or auto: each row's
    own) and a typical width (for sheets written as they stream, where the longest value is not known in
    advance)."""

    header: str
    get: Callable[[dict[str, Any]], Any]
    kind: str = "text"
    width: int = 0


def _key(*keys: str) -> Callable[[dict[str, Any]], Any]:
    """A getter of row[k] or row[k1][k2] (it runs for most cells of the ~10^5-row region sheet)."""
    if len(keys) == 1:
        return itemgetter(keys[0])
    outer, inner = keys
    return lambda row: row[outer][inner]


def _status(status: str) -> Callable[[dict[str, Any]], Any]:
    return lambda c: c["by_status"].get(status, 0)


def _opt(v: Any) -> Any:
    return "" if v is None else v


NOTICE_COLUMNS: list[Col] = [
    Col("通知编号", lambda r: r["notice_id"], "int", 10),
    Col("区划代码", lambda r: r["region_code"], "code", 16),
    Col("区划路径", lambda r: r["region_path"], "text", 44),
    Col("姓名", lambda r: r["name"], "text", 10),
    Col("角色", lambda r: r["role_zh"], "text", 18),
    Col("电话", lambda r: r["phone"] or "", "code", 16),
    Col("需叫应", lambda r: yes_no(r["requires_ack"]), "text", 8),
    Col("状态", lambda r: r["state_zh"], "text", 12),
    Col("已叫应", lambda r: yes_no(r["acknowledged"]), "text", 8),
    Col("叫应时间", lambda r: r["acknowledged_at"], "time", 20),
    Col("叫应用时(秒)", lambda r: r["seconds_to_ack"], "float", 12),
    Col("超时叫应", lambda r: yes_no(r["late"]), "text", 10),
    Col("叫应方式", lambda r: zh(labels.ACK_PATH, r["ack_path"]), "text", 10),
    Col("代叫应方式", lambda r: r["proxy_method_zh"], "text", 12),
    Col("代叫应说明", lambda r: r["ack_note"] or "", "text", 30),
    Col("代叫应操作人", lambda r: r["ack_actor"] or "", "text", 12),
    Col("叫应期限", lambda r: r["deadline"], "time", 20),
    Col("送达时间", lambda r: r["delivered_at"], "time", 20),
    Col("消息数", lambda r: r["messages"], "int", 8),
    Col("发送次数", lambda r: r["attempts"], "int", 10),
    Col("最后渠道", lambda r: zh(labels.CHANNEL, r["last_channel"]), "text", 10),
    Col("最后投递状态", lambda r: zh(labels.OUTBOX_STATUS, r["last_status"]), "text", 12),
    Col("最后错误码", lambda r: r["last_error"] or "", "code", 10),
    Col("升级叫应次数", lambda r: r["escalations"], "int", 12),
    Col("升级后应答数", lambda r: r["escalations_answered"], "int", 12),
    Col("已上报", lambda r: "、".join(f"{t['name']}({t['role_zh']},{t['state_zh']})" for t in r["escalated_to"]),
        "text", 24),
    Col("响应反馈", lambda r: labels.FEEDBACK_STATE["given" if r["feedback_given"] else "missing"]
        if r["feedback_deadline"] or r["feedback_given"] else "", "text", 10),
    Col("反馈期限", lambda r: zh(labels.FEEDBACK_DEADLINE, r["feedback_deadline"]), "text", 16),
    Col("反馈时间", lambda r: r["feedback_at"], "time", 20),
    Col("到岗", lambda r: yes_no(r["at_post"]), "text", 6),
    Col("受影响村数", lambda r: r["villages_affected"], "int", 12),
    Col("转移人数", lambda r: r["people_evacuated"], "int", 10),
    Col("反馈说明", lambda r: r["feedback_note"] or "", "text", 30),
]

COUNT_COLUMNS = [("通知人数", "recipients"), ("应叫应", "required"), ("已触达", "reached"),
                 ("已送达", "delivered"), ("已叫应", "acknowledged"), ("按时叫应", "on_time"),
                 ("超时叫应", "late"), ("代叫应", "proxy"), ("未叫应", "never"),
                 ("其中待叫应", "waiting"), ("其中超时未叫应", "timed_out"), ("其中已结束未叫应", "closed")]
RATE_COLUMNS = [("叫应率", "rate"), ("按时叫应率", "on_time_rate")]
FEEDBACK_COLUMNS = [("应反馈", "expected"), ("已反馈", "given"), ("未反馈", "missing"), ("按时反馈", "on_time"),
                    ("超时反馈", "late"), ("超时未反馈", "missed"), ("期限内未反馈", "open"), ("到岗人数", "at_post"),
                    ("受影响村数", "villages_affected"), ("转移人数", "people_evacuated")]
FEEDBACK_RATES = [("反馈率", "rate"), ("按时反馈率", "on_time_rate")]

REGION_COLUMNS: list[Col] = (
    [Col("层级", lambda n: zh(labels.REGION_LEVEL, n["level"])), Col("区划代码", lambda n: n["code"], "code"),
     Col("区划名称", lambda n: n["name"]), Col("上级区划代码", lambda n: n["parent_code"] or "", "code")]
    + [Col(h, _key("subtree", k), "int") for h, k in COUNT_COLUMNS]
    + [Col(h, _key("subtree", k), "pct") for h, k in RATE_COLUMNS]
    + [Col("本级人员应叫应", lambda n: n["own"]["required"], "int"),
       Col("本级人员已叫应", lambda n: n["own"]["acknowledged"], "int")])

FEEDBACK_REGION_COLUMNS: list[Col] = (
    [Col("区划代码", lambda r: r["code"], "code"), Col("区划名称", lambda r: r["name"])]
    + [Col(h, _key(k), "int") for h, k in FEEDBACK_COLUMNS]
    + [Col(h, _key(k), "pct") for h, k in FEEDBACK_RATES])

PROXY_COLUMNS: list[Col] = [
    Col("通知编号", lambda r: r["notice_id"], "int", 10), Col("区划代码", lambda r: r["region_code"], "code", 16),
    Col("区划名称", lambda r: r["region_name"], "text", 16), Col("姓名", lambda r: r["name"], "text", 10),
    Col("角色", lambda r: r["role_zh"], "text", 18), Col("电话", lambda r: r["phone"] or "", "code", 16),
    Col("代叫应方式", lambda r: r["method_zh"], "text", 14), Col("说明", lambda r: r["note"] or "", "text", 36),
    Col("操作人", lambda r: r["actor"] or "", "text", 12), Col("叫应时间", lambda r: r["acknowledged_at"], "time", 20),
    Col("超时叫应", lambda r: yes_no(r["late"]), "text", 10),
]

HISTORY_COLUMNS: list[Col] = [
    Col("版本", lambda h: h["revision"], "int"), Col("类型", lambda h: h["msg_type_zh"]),
    Col("时间", lambda h: h["sent_at"], "time"), Col("操作人", lambda h: h["actor"] or ""),
    Col("级别", lambda h: h["level_zh"]), Col("变更", lambda h: "、".join(h["changes"])),
    Col("原因/说明", lambda h: h["reason"] or ""), Col("消息标识", lambda h: h["identifier"], "code"),
]

CHANNEL_COLUMNS: list[Col] = (
    [Col("渠道", lambda c: zh(labels.CHANNEL, c["channel"])), Col("消息数", lambda c: c["messages"], "int"),
     Col("发送次数", lambda c: c["attempts"], "int")]
    + [Col(zh(labels.OUTBOX_STATUS, s), _status(s), "int")
       for s in labels.OUTBOX_STATUS]
    + [Col("送达率", lambda c: c["delivered_rate"], "pct")])


def csv_value(col: Col, row: dict[str, Any]) -> Any:
    v = col.get(row)
    if col.kind == "time":
        return local(v)
    if col.kind == "pct":
        return pct(v)
    return cell(_opt(v))


def history_reason(report: dict[str, Any], msg_type: str) -> str:
    """The latest update's or the lift's reason, for the report header."""
    found = [h for h in report["history"] if h["msg_type"] == msg_type]
    return (found[-1]["reason"] or "") if found else ""


def region_rows(report: dict[str, Any]) -> list[list[Any]]:
    return [[csv_value(c, n) for c in REGION_COLUMNS] for n in report["rollup"]["nodes"]]


def notice_row(r: dict[str, Any]) -> list[Any]:
    return [csv_value(c, r) for c in NOTICE_COLUMNS]


def filename(scoped: Scoped, ext: str) -> dict[str, str]:
    w = scoped.warning
    ascii_name = f"warning-{w.id}-{scoped.region.code}.{ext}"
    zh_name = f"叫应统计-{w.title}-{scoped.region.name}.{ext}"
    return {"Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(zh_name)}"}


# --- CSV ---------------------------------------------------------------------------------------------------------

async def csv_chunks(session: AsyncSession, *, scoped: Scoped, rows: str, now: datetime,
                     progress: ProgressFn | None = None) -> AsyncIterator[bytes]:
    """The CSV, a page of rows at a time (UTF-8 with BOM); `progress(done, total)` after each page."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    done = 0

    def flush() -> bytes:
        data = buf.getvalue().encode("utf-8")
        buf.seek(0)
        buf.truncate()
        return data

    async def advance(n: int, total: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            await progress(done, total)

    yield "\ufeff".encode()
    if rows in ("regions", "feedback"):
        report, tree = await report_and_rollup(session, scoped=scoped, now=now,
                                               rollup="grid" if rows == "regions" else "none",
                                               missing_limit=0, proxy_limit=0)
        if rows == "regions":
            out.writerow([c.header for c in REGION_COLUMNS])
            # Nodes are built a page at a time, as they are written.
            for start in range(0, len(tree), PAGE):
                out.writerows([csv_value(c, n) for c in REGION_COLUMNS]
                              for n in tree.nodes(offset=start, limit=PAGE))
                await advance(min(PAGE, len(tree) - start), len(tree))
                yield flush()
        else:
            out.writerow([c.header for c in FEEDBACK_REGION_COLUMNS])
            by_region = report["feedback"]["by_region"]
            out.writerows([csv_value(c, r) for c in FEEDBACK_REGION_COLUMNS] for r in by_region)
            # The last line is the total, so a sheet's column sums can be checked against it.
            total = {"code": scoped.region.code, "name": f"合计({scoped.region.name})",
                     **report["feedback"]["totals"]}
            out.writerow([csv_value(c, total) for c in FEEDBACK_REGION_COLUMNS])
            await advance(len(by_region), len(by_region))
        yield flush()
        return
    if rows == "proxy":
        out.writerow([c.header for c in PROXY_COLUMNS])
        async for page in fb.iter_proxy(session, scoped=scoped):
            out.writerows([csv_value(c, r) for c in PROXY_COLUMNS] for r in page)
            await advance(len(page), 0)
            yield flush()
        yield flush()
        return
    total = await export_rows(session, scoped=scoped, rows=rows) if progress is not None else 0
    out.writerow([c.header for c in NOTICE_COLUMNS])
    async for page in iter_notices(session, scoped=scoped, now=now, only_missing=rows == "missing"):
        out.writerows(notice_row(r) for r in page)
        await advance(len(page), total)
        yield flush()
    yield flush()


async def export_rows(session: AsyncSession, *, scoped: Scoped, rows: str = "notices") -> int:
    """How many notice rows an export of `scoped` reads: what decides between the request and a job, and
    the total a job's progress counts towards (only the missing for `rows=missing`)."""
    n = q.N
    stmt = select(func.count()).select_from(n).where(n.c.warning_id == scoped.warning.id, n.c.reason == "primary")
    if rows == "missing":
        stmt = stmt.where(n.c.requires_ack.is_(True), n.c.acknowledged_at.is_(None))
    if scoped.path is not None:
        stmt = stmt.join(R, R.c.code == n.c.region_code).where(Scope(scoped.path).predicate(R.c.path))
    return int((await session.execute(stmt)).scalar_one())


# --- XLSX --------------------------------------------------------------------------------------------------------

FORMATS = {"time": "yyyy-mm-dd hh:mm:ss", "pct": "0.0%", "int": "0", "float": "0.0", "code": "@", "text": "@"}
MAX_WIDTH = 60
HEADER_ROWS = 3  # title, scope and export time, column headers
# A string is a string: never a formula, even after someone edits the cell in Excel (the quote prefix).
# Free text keeps the General format; codes and phones are also formatted as text ("@").
TEXT = xlsx.Style(quote_prefix=True)
TITLE = xlsx.Style(bold=True, size=14, quote_prefix=True)
HEADER = xlsx.Style(bold=True, fill="DDEBF7", wrap=True, quote_prefix=True)
STYLES = {"text": TEXT, "code": xlsx.Style(number_format=FORMATS["code"], quote_prefix=True),
          **{k: xlsx.Style(number_format=FORMATS[k]) for k in ("time", "pct", "int", "float")}}


# Numbers are typed by their column: a count is an int, a rate a float. Text needs nothing (a quote-prefixed
# style holds text whatever the value), nor do times (the workbook writes them as Beijing wall-clock times).
NUMBERS: dict[str, Callable[[Any], Any]] = {"int": int, "float": float, "pct": float}


def typed(kind: str, v: Any) -> Any:
    number = NUMBERS.get(kind)
    return number(v) if number is not None and v is not None and not isinstance(v, str) else v


def book(out: IO[bytes], *, now: datetime) -> xlsx.Workbook:
    """A workbook as the reports write them (use it with `with`; the file is written to `out` at its end).
    Spreadsheets have no time zones: times are the wall-clock time in Beijing, as the offices read them."""
    return xlsx.Workbook(out, created=now, tz=CST)


class Sheet:
    """A streamed sheet laid out as an office table: title, subtitle, bold frozen header with a filter, typed
    cells, A4 landscape fitted to the page's width with the header repeated."""

    def __init__(self, book: xlsx.Workbook, name: str, cols: list[Col], *, title: str, subtitle: str,
                 sample: Iterable[dict[str, Any]] = ()) -> None:
        self.cols = cols
        # Widths sit before the rows in the file: they come from the headers, the typical widths and a sample.
        widths = [max(text_width(c.header) + 2, c.width) for c in cols]
        for r in sample:
            for i, c in enumerate(cols):
                widths[i] = max(widths[i], text_width(c.get(r)) + 2)
        self.ws = book.add_sheet(name, widths=[min(w, MAX_WIDTH) for w in widths], freeze_rows=HEADER_ROWS,
                                 filter_row=HEADER_ROWS, print_title_rows=(HEADER_ROWS, HEADER_ROWS),
                                 landscape=True, fit_to_width=True, grid_lines=True)
        self.ws.append([title], [TITLE])
        self.ws.append([subtitle], [TEXT])
        self.ws.append([c.header for c in cols], [HEADER] * len(cols))
        self._getters = [c.get for c in cols]
        self._numbers = [(i, NUMBERS[c.kind]) for i, c in enumerate(cols) if c.kind in NUMBERS]
        # An "auto" column's rows each name their kind (append_cells); `append` writes it as text.
        self._styles = tuple(STYLES.get(c.kind, TEXT) for c in cols)

    def append(self, row: dict[str, Any]) -> None:
        values = [get(row) for get in self._getters]
        for i, number in self._numbers:
            v = values[i]
            if v is not None and type(v) is not str:
                values[i] = number(v)
        self.ws.append(values, self._styles)

    def append_cells(self, cells: list[tuple[str, Any]]) -> None:
        """A row whose cells each have their own kind (the summary's values)."""
        self.ws.append([typed(kind, v) for kind, v in cells], [STYLES[kind] for kind, _ in cells])

    def close(self) -> None:
        self.ws.close()


async def write_workbook(session: AsyncSession, *, scoped: Scoped, now: datetime, out: IO[bytes],
                         progress: ProgressFn | None = None) -> int:
    """The whole report as an .xlsx written to `out`, notices streamed a page at a time (each sheet is
    deflated into a temporary file as it fills: memory stays flat however many rows; region nodes are
    built as they are written). Returns the number of notice rows."""
    report, tree = await report_and_rollup(session, scoped=scoped, now=now, rollup="grid", missing_limit=0,
                                           proxy_limit=0)
    w, region = report["warning"], report["region"]
    sub = f"统计范围:{region['name']}({region['code']}) · 导出时间:{local(now)}(北京时间)"
    heading = f"{w['title']}({w['identifier']})"
    total = report["totals"]["recipients"]
    with book(out, now=now) as wb:
        _summary_sheet(wb, report, title=heading, subtitle=sub)
        history = Sheet(wb, "发布与变更", HISTORY_COLUMNS, title=heading, subtitle=sub, sample=report["history"])
        for h in report["history"]:
            history.append(h)
        history.close()
        feedback_rows = report["feedback"]["by_region"]
        sheet = Sheet(wb, "响应反馈", FEEDBACK_REGION_COLUMNS, title=heading,
                      subtitle=f"{sub} · 反馈期限 {int(report['feedback']['deadline_seconds'] // 60)} 分钟,"
                               f"按转移人数从多到少", sample=feedback_rows[:500])
        for r in feedback_rows:
            sheet.append(r)
        sheet.close()
        proxy = Sheet(wb, "代叫应", PROXY_COLUMNS, title=heading, subtitle=sub)
        async for page in fb.iter_proxy(session, scoped=scoped):
            for r in page:
                proxy.append(r)
        proxy.close()
        regions = Sheet(wb, "分区统计", REGION_COLUMNS, title=heading, subtitle=sub,
                        sample=list(tree.nodes(limit=500)))
        for n in tree.nodes():
            regions.append(n)
        regions.close()
        del tree
        notices = Sheet(wb, "叫应明细", NOTICE_COLUMNS, title=heading, subtitle=sub)
        missing = Sheet(wb, "未叫应名单", NOTICE_COLUMNS, title=heading, subtitle=sub)
        done = 0
        async for page in iter_notices(session, scoped=scoped, now=now):
            for r in page:
                notices.append(r)
                if r["requires_ack"] and not r["acknowledged"]:
                    missing.append(r)
            done += len(page)
            if progress is not None:
                await progress(done, total)
        notices.close()
        missing.close()
        channels = Sheet(wb, "渠道统计", CHANNEL_COLUMNS, title=heading, subtitle=sub, sample=report["by_channel"])
        for ch in report["by_channel"]:
            channels.append(ch)
        channels.close()
        return done


async def workbook(session: AsyncSession, *, scoped: Scoped, now: datetime) -> bytes:
    """The workbook in memory (small areas; large ones go through an export job to a file)."""
    bio = io.BytesIO()
    await write_workbook(session, scoped=scoped, now=now, out=bio)
    return bio.getvalue()


SUMMARY_COLUMNS = [Col("项目", lambda r: r["k"], "text", 24), Col("值", lambda r: r["v"], "auto", 50)]


def _summary_sheet(wb: xlsx.Workbook, report: dict[str, Any], *, title: str, subtitle: str) -> None:
    w, t, tta, esc = report["warning"], report["totals"], report["time_to_ack"], report["escalations"]
    f, proxy = report["feedback"], report["proxy"]
    items: list[tuple[str, Any, str]] = [
        ("预警标识", w["identifier"], "code"), ("标题", w["title"], "text"), ("发布单位", w["sender"], "text"),
        ("灾种", w["hazard_zh"], "text"), ("级别", w["level_zh"], "text"), ("性质", w["status_zh"], "text"),
        ("状态", w["state_zh"], "text"), ("发布时间", w["issued_at"], "time"), ("解除时间", w["lifted_at"], "time"),
        ("更新原因", history_reason(report, "update"), "text"), ("解除原因", history_reason(report, "cancel"), "text"),
        ("统计范围", f"{report['region']['name']}({report['region']['code']})", "text"),
        ("统计时间", report["generated_at"], "time"), ("叫应期限(秒)", w["ack_deadline_seconds"], "float"),
    ]
    items += [(label, t[key], "int") for label, key in COUNT_COLUMNS]
    items += [(label, t[key], "pct") for label, key in RATE_COLUMNS]
    items += [("叫应用时中位数(秒)", tta["p50"], "float"), ("叫应用时90分位(秒)", tta["p90"], "float"),
              ("叫应用时最长(秒)", tta["max"], "float"),
              ("B岗叫应发起", esc["deputy"]["fired"], "int"), ("B岗叫应应答", esc["deputy"]["answered"], "int"),
              ("逐级上报发起", esc["escalation"]["fired"], "int"),
              ("逐级上报应答", esc["escalation"]["answered"], "int"),
              ("反馈期限(分钟)", f["deadline_seconds"] / 60, "float")]
    items += [(label, f["totals"][key], "int") for label, key in FEEDBACK_COLUMNS]
    items += [(label, f["totals"][key], "pct") for label, key in FEEDBACK_RATES]
    items += [(f"代叫应·{m['method_zh']}", m["count"], "int") for m in proxy["by_method"]]
    rows = [{"k": k, "v": v, "kind": kind} for k, v, kind in items]
    sheet = Sheet(wb, "汇总", SUMMARY_COLUMNS, title=title, subtitle=subtitle,
                  sample=[{"k": r["k"], "v": r["v"] if r["kind"] != "time" else local(r["v"])} for r in rows])
    for r in rows:
        sheet.append_cells([("text", r["k"]), (r["kind"], r["v"])])
    sheet.close()
