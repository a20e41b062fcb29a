"""The streaming .xlsx writer, read back with openpyxl (what Excel would show is what openpyxl parses)."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import openpyxl
import pytest
from openpyxl.utils.datetime import to_excel

from warning_service import xlsx

CST = timezone(timedelta(hours=8), "CST")
TEXT = xlsx.Style(quote_prefix=True)
CODE = xlsx.Style(number_format="@", quote_prefix=True)
INT = xlsx.Style(number_format="0")
PCT = xlsx.Style(number_format="0.0%")
TIME = xlsx.Style(number_format="yyyy-mm-dd hh:mm:ss")
PLAIN = xlsx.Style()


def written(fill, **book) -> bytes:
    out = io.BytesIO()
    with xlsx.Workbook(out, created=datetime(2026, 7, 1, 8, 0, tzinfo=UTC), **book) as wb:
        fill(wb)
    return out.getvalue()


def read(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


def one_row(values, styles, **book) -> list[openpyxl.cell.Cell]:
    data = written(lambda wb: wb.add_sheet("s").append(values, styles), **book)
    return list(read(data)["s"].iter_rows(min_row=1, max_row=1, max_col=len(values)))[0]


def test_cells_keep_their_values_types_and_number_formats():
    cells = one_row(["区划", "330102", 42, 0.125, 3.5, Decimal("7.25"), True, date(2026, 7, 1),
                     datetime(2026, 7, 1, 9, 30, 15)],
                    (TEXT, CODE, INT, PCT, PLAIN, PLAIN, PLAIN, TIME, TIME))
    assert [c.value for c in cells] == ["区划", "330102", 42, 0.125, 3.5, 7.25, True, datetime(2026, 7, 1),
                                        datetime(2026, 7, 1, 9, 30, 15)]
    assert [c.data_type for c in cells] == ["s", "s", "n", "n", "n", "n", "b", "d", "d"]
    assert [c.number_format for c in cells] == ["General", "@", "0", "0.0%", "General", "General", "General",
                                                "yyyy-mm-dd hh:mm:ss", "yyyy-mm-dd hh:mm:ss"]
    assert type(cells[2].value) is int and type(cells[3].value) is float
    assert cells[0].quotePrefix and cells[1].quotePrefix and not cells[2].quotePrefix


def test_none_and_empty_strings_leave_the_cell_out():
    data = written(lambda wb: wb.add_sheet("s").append(["a", None, "", 0, "z"], (TEXT, TEXT, TEXT, INT, TEXT)))
    row = read(data)["s"][1]
    assert [c.value for c in row] == ["a", None, None, 0, "z"]
    assert b"<c r=\"B1\"" not in zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml")


@pytest.mark.parametrize("text", ["=1+1", "=HYPERLINK(\"http://x\")", "+8613800138000", "0571-87001234",
                                  "057187001234", "-5", "@SUM(A1)", "1e5", "TRUE"])
def test_text_that_looks_like_a_formula_or_a_number_stays_text(text):
    cell = one_row([text], (TEXT,))[0]
    assert (cell.value, cell.data_type, cell.quotePrefix) == (text, "s", True)


def test_a_number_in_a_text_style_is_written_as_its_text():
    cells = one_row([571, 1.5, True], (CODE, TEXT, TEXT))
    assert [(c.value, c.data_type) for c in cells] == [("571", "s"), ("1.5", "s"), ("True", "s")]


def test_characters_xml_forbids_are_dropped_and_markup_is_escaped():
    values = ["a\x00b\x08c\x0bd\x1fe", "<b>&amp;</b> \"q\" 'a'", "整改\ufffe完成\ud800", "  两端空格  ",
              "行一\n行二\t列", "回车\r\n", "\x01"]
    cells = one_row(values, (TEXT,) * len(values))
    assert [c.value for c in cells] == ["abcde", "<b>&amp;</b> \"q\" 'a'", "整改完成", "  两端空格  ", "行一\n行二\t列",
                                        "回车\r\n", None]


def test_cjk_is_written_as_utf8():
    data = written(lambda wb: wb.add_sheet("叫应明细").append(["浙江省/杭州市"], (TEXT,)))
    sheet = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml")
    assert "浙江省/杭州市".encode() in sheet
    assert read(data).sheetnames == ["叫应明细"]


def test_aware_datetimes_are_the_wall_clock_time_of_the_workbooks_zone():
    t = datetime(2026, 7, 1, 23, 59, 58, 250_000, tzinfo=UTC)
    cells = one_row([t, t.astimezone(timezone(timedelta(hours=-5))), datetime(2026, 7, 2, 7, 59, 58, 250_000)],
                    (TIME,) * 3, tz=CST)
    # Beijing is 8 hours ahead: the next morning, to the millisecond; a naive time is taken as it is.
    assert [c.value for c in cells] == [datetime(2026, 7, 2, 7, 59, 58, 250_000)] * 3
    assert cells[0].is_date


def test_an_aware_datetime_without_a_workbook_zone_is_refused():
    with pytest.raises(ValueError, match="tz"):
        written(lambda wb: wb.add_sheet("s").append([datetime.now(UTC)], (TIME,)))


def test_datetimes_serial_numbers_match_openpyxls():
    for t in (datetime(2026, 7, 1, 9, 30, 15, 123_456), datetime(1900, 1, 15, 6), datetime(1999, 12, 31, 23, 59, 59)):
        assert xlsx.excel_serial(t) == to_excel(t)
        book = xlsx.Workbook(io.BytesIO(), tz=CST)
        assert book.serial(t.replace(tzinfo=CST)) == to_excel(t)


def test_styles_are_bold_sized_filled_and_wrapped():
    title = xlsx.Style(bold=True, size=14, quote_prefix=True)
    header = xlsx.Style(bold=True, fill="DDEBF7", wrap=True, quote_prefix=True)
    cells = one_row(["标题", "表头", "值"], (title, header, TEXT))
    assert (cells[0].font.b, cells[0].font.sz) == (True, 14)
    assert cells[1].font.b and cells[1].fill.fill_type == "solid" and cells[1].fill.fgColor.rgb.endswith("DDEBF7")
    assert cells[1].alignment.wrap_text and cells[1].alignment.vertical == "center"
    assert not cells[2].font.b and cells[2].fill.fill_type is None


def test_layout_freeze_widths_filter_print_titles_and_page_setup():
    def fill(wb: xlsx.Workbook) -> None:
        s = wb.add_sheet("明细", widths=[10, 44.5, 60], freeze_rows=3, filter_row=3, print_title_rows=(3, 3),
                         landscape=True, fit_to_width=True, grid_lines=True)
        s.append(["标题"], (TEXT,))
        s.append(["副标题"], (TEXT,))
        s.append(["A", "B", "C"], (TEXT,) * 3)
        for i in range(7):
            s.append([i, f"r{i}", None], (INT, TEXT, TEXT))
        empty = wb.add_sheet("空表", widths=[8, 8], freeze_rows=3, filter_row=3, print_title_rows=(3, 3))
        empty.append(["标题"], (TEXT,))

    wb = read(written(fill))
    ws = wb["明细"]
    assert ws.freeze_panes == "A4"
    assert [ws.column_dimensions[c].width for c in "ABC"] == [10, 44.5, 60]
    assert ws.auto_filter.ref == "A3:C10"
    assert ws.print_title_rows == "$3:$3"
    assert (ws.page_setup.orientation, int(ws.page_setup.paperSize)) == ("landscape", 9)
    assert (ws.page_setup.fitToWidth, ws.page_setup.fitToHeight, ws.sheet_properties.pageSetUpPr.fitToPage) == (
        1, 0, True)
    assert ws.print_options.gridLines
    # A sheet without data rows filters its header and the row below it.
    assert wb["空表"].auto_filter.ref == "A3:B4" and wb["空表"].print_title_rows == "$3:$3"
    assert wb.sheetnames == ["明细", "空表"]


def test_sheets_filled_interleaved_each_keep_their_rows():
    def fill(wb: xlsx.Workbook) -> None:
        every, some = wb.add_sheet("叫应明细"), wb.add_sheet("未叫应名单")
        for i in range(1000):
            every.append([i, f"人{i}"], (INT, TEXT))
            if i % 7 == 0:
                some.append([i, f"人{i}"], (INT, TEXT))

    wb = read(written(fill))
    assert [r for r in wb["叫应明细"].iter_rows(values_only=True)] == [(i, f"人{i}") for i in range(1000)]
    assert [r for r in wb["未叫应名单"].iter_rows(values_only=True)] == [(i, f"人{i}") for i in range(0, 1000, 7)]


def test_the_same_rows_and_time_give_the_same_bytes():
    def fill(wb: xlsx.Workbook) -> None:
        wb.add_sheet("s", widths=[8]).append(["a", 1, datetime(2026, 7, 1)], (TEXT, INT, TIME))

    data = written(fill)
    assert data == written(fill)
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None


def test_sheet_names_excel_refuses_are_refused():
    book = xlsx.Workbook(io.BytesIO())
    book.add_sheet("汇总")
    for bad in ("", "a" * 32, "a/b", "a[1]", "what?", "'q'", "汇总"):
        with pytest.raises(ValueError):
            book.add_sheet(bad)
    book.discard()


def test_an_error_while_filling_writes_nothing():
    out = io.BytesIO()
    with pytest.raises(RuntimeError), xlsx.Workbook(out) as wb:
        wb.add_sheet("s").append(["a"], (TEXT,))
        raise RuntimeError("query failed")
    assert out.getvalue() == b""


def test_a_big_sheet_streams_in_flat_memory(tmp_path):
    rows, styles = 50_000, (INT, TEXT, CODE, TEXT, PCT, TIME, INT, TEXT)
    row = [0, "浙江省/杭州市/上城区/清波街道/清波门社区/第3网格", "+8613900000001", "已叫应", 0.9231,
           datetime(2026, 7, 1, 9, 30), 3, "村干部上门确认,已转移"]
    tracemalloc.start()
    try:
        with open(tmp_path / "big.xlsx", "wb") as out, xlsx.Workbook(out, temp_dir=str(tmp_path)) as wb:
            sheet = wb.add_sheet("big", widths=[10] * len(row))
            for i in range(rows):
                row[0] = i
                sheet.append(row, styles)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    xml = zipfile.ZipFile(tmp_path / "big.xlsx").read("xl/worksheets/sheet1.xml")
    # The rows' XML is ~25 MB; what is held at once is a buffer of rows waiting to be deflated.
    assert len(xml) > 15_000_000 and peak < 3_000_000, (len(xml), peak)
    assert xml.endswith(b"</worksheet>") and f'<row r="{rows}"><c r="A{rows}" s="1"><v>{rows - 1}</v>'.encode() in xml
