from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.factories import TREE_CSV
from warning_service.errors import Invalid
from warning_service.region import service
from warning_service.region.models import Region


async def count(db) -> int:
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(Region))).scalar_one()


async def test_import_twice_updates_names_and_never_duplicates(db):
    async with db.session() as s:
        first = await service.import_csv(s, path="t.csv", raw=TREE_CSV.encode())
    renamed = TREE_CSV.replace("横湖村,village", "横湖新村,village")
    async with db.session() as s:
        second = await service.import_csv(s, path="t.csv", raw=renamed.encode())
    assert (first.inserted, first.updated) == (11, 0)
    assert (second.inserted, second.updated) == (0, 11)
    assert await count(db) == 11
    async with db.session() as s:
        assert (await service.get(s, code="331081001001")).name == "横湖新村"


async def test_bad_row_names_line_and_field_and_writes_nothing(db):
    bad = TREE_CSV + "331081001003,坏村,hamlet,331081001\n"
    with pytest.raises(Invalid) as e:
        async with db.session() as s:
            await service.import_csv(s, path="t.csv", raw=bad.encode())
    assert "line 13" in e.value.message_en and e.value.field == "level"
    assert "第 13 行" in e.value.message_zh
    assert await count(db) == 0


async def test_unknown_parent_is_rejected(db):
    bad = TREE_CSV + "331081009001,孤村,village,331081009\n"
    with pytest.raises(Invalid) as e:
        async with db.session() as s:
            await service.import_csv(s, path="t.csv", raw=bad.encode())
    assert e.value.field == "parent_code"
    assert await count(db) == 0


async def test_wrong_header_is_rejected(db):
    with pytest.raises(Invalid) as e:
        async with db.session() as s:
            await service.import_csv(s, path="t.csv", raw=b"code,name,level\n33,x,province\n")
    assert e.value.field == "header"


async def test_grids_extend_village_codes_and_are_idempotent(db):
    async with db.session() as s:
        await service.import_csv(s, path="t.csv", raw=TREE_CSV.encode())
        assert await service.add_grids(s, per_village=3) == 12
    async with db.session() as s:
        await service.add_grids(s, per_village=3)
        grids = await service.descendants(s, code="331081001001", levels=["grid"])
    assert [g.code for g in grids] == ["33108100100101", "33108100100102", "33108100100103"]
    assert grids[0].parent_code == "331081001001" and grids[0].name == "横湖村第1网格"
    assert await count(db) == 11 + 12


@pytest.mark.parametrize(
    ("root", "level", "expected"),
    [
        ("33", "grid", 8),
        ("3310", "village", 4),
        ("331081", "grid", 6),
        ("331081", "town", 2),
        ("331081001", "grid", 4),
        ("331081001001", "grid", 2),
        ("33108100100101", "grid", 1),
        ("331082", "grid", 2),
    ],
)
async def test_descendants_at_every_level(db, root, level, expected):
    async with db.session() as s:
        await service.import_csv(s, path="t.csv", raw=TREE_CSV.encode())
        await service.add_grids(s, per_village=2)
        found = await service.descendants(s, code=root, levels=[level])
        assert len(found) == expected
        root_path = (await service.get(s, code=root)).path
        assert all(r.path.startswith(root_path) for r in found)
        assert await service.count_descendants(s, code=root, levels=[level]) == expected


async def test_zhejiang_file_imports_whole(db, request):
    from tests.conftest import PROJECT_DATA

    path = PROJECT_DATA / "zhejiang-divisions.csv"
    async with db.session() as s:
        result = await service.import_csv(s, path=path)
    assert result.rows == 27_036
    async with db.session() as s:
        assert await service.count_descendants(s, code="331081", levels=["village"]) > 500
        paths = await service.region_paths(s, ["331081001"])
    assert paths["331081001"] == "浙江省/台州市/温岭市/太平街道"
