"""Rosters: Big5 files refused instead of imported as garbage; NUL or overlong names named by file/line/field."""

from __future__ import annotations

import pytest

from tests.factories import build_tree
from warning_service.errors import Invalid
from warning_service.person import service as people

HEADER = "region_code,name,role,phone,email\n"


@pytest.fixture
async def small_tree(db, clock):
    return await build_tree(db, now=clock.now(), with_people=False)


async def test_a_big5_roster_is_refused_with_a_clear_message(db, small_tree):
    raw = (HEADER + "33108100100101,陳國華,grid_responsible,13900001111,\n"
           "33108100100102,黃麗貞,grid_responsible,13900001112,\n").encode("big5")
    with pytest.raises(Invalid) as err:
        async with db.session() as s:
            await people.import_csv(s, path="roster.csv", raw=raw, now=None)
    assert "Big5" in err.value.message_en and err.value.field == "encoding"


async def test_a_gbk_roster_still_imports(db, small_tree, clock):
    raw = (HEADER + "33108100100101,陈国华,grid_responsible,13900001111,\n").encode("gbk")
    async with db.session() as s:
        result = await people.import_csv(s, path="roster.csv", raw=raw, now=clock.now())
    assert result.inserted == 1


@pytest.mark.parametrize("value,reason", [("张\x00三", "NUL"), ("张" * 101, "100")])
async def test_bad_names_are_named_by_file_line_and_field(db, small_tree, clock, value, reason):
    raw = (HEADER + f"33108100100101,{value},grid_responsible,13900001111,\n").encode()
    with pytest.raises(Invalid) as err:
        async with db.session() as s:
            await people.import_csv(s, path="roster.csv", raw=raw, now=clock.now())
    assert err.value.field == "name" and "roster.csv" in err.value.message_en and "line 2" in err.value.message_en
    assert reason in str(err.value)
