"""Reading the CSV files county offices export from their spreadsheets."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from openpyxl import load_workbook

from warning_service.errors import Invalid


@dataclass(frozen=True)
class CsvRow:
    line: int
    values: dict[str, str]


# Longest value any roster or region column holds (person.name is the widest text column at 100).
MAX_FIELD_CHARS = 254


def _looks_big5(raw: bytes, text: str) -> bool:
    """Big5 (Traditional Chinese, Taiwan/HK Excel) bytes nearly always decode as GB18030 too, into rare
    characters: when most Han characters fall outside GB2312's common set and the bytes are valid Big5,
    the file is Big5 and its names would be garbage."""
    han = [c for c in text if "\u4e00" <= c <= "\u9fff"]
    if len(han) < 4:
        return False
    rare = 0
    for c in han:
        try:
            c.encode("gb2312")
        except UnicodeEncodeError:
            rare += 1
    if rare / len(han) < 0.3:
        return False
    try:
        raw.decode("big5")
    except UnicodeDecodeError:
        return False
    return True


def decode(raw: bytes, *, filename: str) -> str:
    """UTF-8 (with or without BOM) first, then GB18030 (a superset of GBK), as Excel in China saves it."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        text = None
    if text is not None and not _looks_big5(raw, text):
        return text
    if text is not None:
        raise Invalid(f"{filename}: looks like Big5 (Traditional Chinese); save it as UTF-8 or GBK",
                      f"{filename}:文件似为繁体 Big5 编码,请另存为 UTF-8 或 GBK 后再导入", field="encoding")
    raise Invalid(f"{filename}: not UTF-8 or GB18030 text", f"{filename}:文件编码既不是 UTF-8 也不是 GB18030")


def read_rows(path: Path | str, *, header: list[str], raw: bytes | None = None) -> Iterator[CsvRow]:
    """Yield rows as dicts keyed by the exact header; line numbers count from 1 at the header."""
    name = str(path)
    text = decode(raw if raw is not None else Path(path).read_bytes(), filename=name)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        first = next(reader)
    except StopIteration:
        raise Invalid(f"{name}: the file is empty", f"{name}:文件为空") from None
    got = [h.strip() for h in first]
    if got != header:
        raise Invalid(
            f"{name}, line 1: header must be {','.join(header)} (got {','.join(got)})",
            f"{name} 第 1 行:表头应为 {','.join(header)}(实际为 {','.join(got)})",
            field="header",
        )
    for values in reader:
        line = reader.line_num
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise Invalid(
                f"{name}, line {line}: expected {len(header)} fields, got {len(values)}",
                f"{name} 第 {line} 行:应有 {len(header)} 列,实际 {len(values)} 列",
                line=line,
            )
        for h, v in zip(header, values, strict=True):
            if "\x00" in v:
                raise row_error(name, line, h, "NUL character", "含有空字符 (NUL)")
            if len(v) > MAX_FIELD_CHARS:
                raise row_error(name, line, h, f"longer than {MAX_FIELD_CHARS} characters",
                                f"超过 {MAX_FIELD_CHARS} 个字符")
        yield CsvRow(line, {h: v.strip() for h, v in zip(header, values, strict=True)})


def row_error(name: str, line: int, field: str, en: str, zh: str) -> Invalid:
    return Invalid(f"{name}, line {line}, field {field}: {en}", f"{name} 第 {line} 行,字段 {field}:{zh}",
                   field=field, line=line)


def read_table(path: Path | str, *, columns: dict[str, tuple[str, ...]], required: tuple[str, ...],
               raw: bytes | None = None) -> Iterator[CsvRow]:
    """Rows keyed by column name, whatever the header calls them (English or Chinese, any order).

    `columns` maps each name to the header spellings accepted for it; missing optional columns read as ''."""
    name = str(path)
    text = decode(raw if raw is not None else Path(path).read_bytes(), filename=name)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        first = next(reader)
    except StopIteration:
        raise Invalid(f"{name}: the file is empty", f"{name}:文件为空") from None
    spelling = {alias.lower(): col for col, aliases in columns.items() for alias in aliases}
    index: dict[str, int] = {}
    for i, h in enumerate(first):
        col = spelling.get(h.strip().lower())
        if col is not None and col not in index:
            index[col] = i
    missing = [c for c in required if c not in index]
    if missing:
        wanted = ",".join(f"{columns[c][0]}/{columns[c][1]}" for c in missing)
        raise Invalid(f"{name}, line 1: the header lacks {wanted} (got {','.join(first)})",
                      f"{name} 第 1 行:表头缺少 {wanted}(实际为 {','.join(first)})", field="header")
    for values in reader:
        line = reader.line_num
        if not values or all(not v.strip() for v in values):
            continue
        yield CsvRow(line, {c: (values[i].strip() if i < len(values) else "") for c, i in index.items()}
                     | {c: "" for c in columns if c not in index})


def xlsx_as_csv(raw: bytes, *, filename: str) -> bytes:
    """The first sheet of an .xlsx as UTF-8 CSV, so spreadsheets and CSV files share one importer."""
    try:
        book = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 — any unreadable workbook is the user's file, not our fault
        raise Invalid(f"{filename}: not a readable .xlsx workbook ({type(exc).__name__})",
                      f"{filename}:无法读取该 Excel 文件(.xlsx)", field="file") from None
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for values in book.worksheets[0].iter_rows(values_only=True):
        writer.writerow(["" if v is None else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
                         for v in values])
    book.close()
    return buf.getvalue().encode()
