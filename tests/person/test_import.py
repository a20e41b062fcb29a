from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.factories import TREE_CSV
from warning_service.errors import Invalid
from warning_service.person import service
from warning_service.person.models import Person
from warning_service.person.phone import PhoneError, normalize_phone
from warning_service.region import service as regions

PEOPLE = """region_code,name,role,phone,email
331081001001,王建国,village_responsible,13812345678,wang@example.cn
331081001001,李海燕,disaster_info_officer,+86 138 1234 5679,
331081001,张志强,town_responsible,+8613812345680,zhang@example.cn
"""


@pytest.fixture
async def tree(db):
    async with db.session() as s:
        await regions.import_csv(s, path="t.csv", raw=TREE_CSV.encode())


async def people(db) -> list[Person]:
    async with db.session() as s:
        return list((await s.execute(select(Person).order_by(Person.id))).scalars())


@pytest.mark.parametrize(("encoding", "newline", "bom"), [
    ("utf-8", "\n", False), ("utf-8", "\r\n", True), ("gb18030", "\r\n", False), ("gbk", "\n", False)])
async def test_import_accepts_spreadsheet_encodings(db, tree, clock, encoding, newline, bom):
    raw = PEOPLE.replace("\n", newline).encode(encoding)
    if bom:
        raw = b"\xef\xbb\xbf" + raw
    async with db.session() as s:
        result = await service.import_csv(s, path="p.csv", raw=raw, now=clock.now())
    assert result.inserted == 3
    got = await people(db)
    assert [p.name for p in got] == ["王建国", "李海燕", "张志强"]
    assert [p.phone for p in got] == ["+8613812345678", "+8613812345679", "+8613812345680"]
    assert got[1].email is None


async def test_reimport_is_idempotent_on_region_role_phone(db, tree, clock):
    async with db.session() as s:
        await service.import_csv(s, path="p.csv", raw=PEOPLE.encode(), now=clock.now())
    async with db.session() as s:
        again = await service.import_csv(s, path="p.csv", raw=PEOPLE.replace("王建国", "王建军").encode(),
                                         now=clock.now())
    assert (again.inserted, again.updated) == (0, 3)
    got = await people(db)
    assert len(got) == 3 and got[0].name == "王建军"


@pytest.mark.parametrize(("line", "field"), [
    ("331081001001,赵六,village_responsible,12345,", "phone"),
    ("999999,赵六,village_responsible,13912345678,", "region_code"),
    ("331081001001,,village_responsible,13912345678,", "name"),
    ("331081001001,赵六,Village Head,13912345678,", "role"),
    ("331081001001,赵六,village_responsible,13912345678,not-an-email", "email"),
])
async def test_bad_row_names_line_field_and_writes_nothing(db, tree, clock, line, field):
    with pytest.raises(Invalid) as e:
        async with db.session() as s:
            await service.import_csv(s, path="p.csv", raw=(PEOPLE + line + "\n").encode(), now=clock.now())
    assert e.value.field == field
    assert "line 5" in e.value.message_en and "第 5 行" in e.value.message_zh
    assert await people(db) == []


@pytest.mark.parametrize(("raw", "expected"), [
    ("13812345678", "+8613812345678"),
    ("+86 138-1234-5678", "+8613812345678"),
    ("008613812345678", "+8613812345678"),
    ("１３８１２３４５６７８", "+8613812345678"),
    ("0576-86123456", "+8657686123456"),
])
def test_phone_numbers_are_stored_as_e164(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", ["", "12345", "1381234567", "abc", "+86 99999999999"])
def test_invalid_phone_numbers_are_refused(raw):
    with pytest.raises(PhoneError):
        normalize_phone(raw)


async def test_roster_health_lists_uncovered_regions_and_unreachable_people(db, tree, clock):
    async with db.session() as s:
        await service.import_csv(s, path="p.csv", raw=PEOPLE.encode(), now=clock.now())
        await s.execute(Person.__table__.insert().values(
            region_code="331081002001", name="无号码", role="village_responsible", phone=None, email=None,
            active=True, created_at=clock.now(), updated_at=clock.now()))
    async with db.session() as s:
        root = await regions.get(s, code="331081")
        report = await service.roster_health(s, scope_path=root.path, level="village")
    assert [r["code"] for r in report["regions_without_responsible"]] == ["331081001002"]
    assert [p["name"] for p in report["people_without_contact"]] == ["无号码"]
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Person))).scalar_one() == 4


ROSTER_ZH = """区划代码,姓名,角色,手机号码,职务,单位,备用电话,B岗
331081001001,王建国,村级责任人,13812345678,村委会主任,横湖村村委会,0576-86112233,李海燕
331081001001,李海燕,灾害信息员,13812345679,村委委员,横湖村村委会,,
331081001001,陈立,驻村干部,13812345681,副镇长,太平街道办事处,,13812345678
331081001002,赵敏,网格员,13812345682,网格长,,,
"""


async def test_chinese_roster_in_gb18030_with_duty_columns_and_b_post(db, tree, clock):
    async with db.session() as s:
        result = await service.import_csv(s, path="名单.csv", raw=ROSTER_ZH.replace("\n", "\r\n").encode("gb18030"),
                                          now=clock.now())
    assert result.inserted == 4
    got = {p.name: p for p in await people(db)}
    wang = got["王建国"]
    assert (wang.role, wang.title, wang.unit, wang.backup_phone) == (
        "village_responsible", "村委会主任", "横湖村村委会", "+8657686112233")
    assert got["李海燕"].role == "disaster_info_officer" and got["陈立"].role == "village_cadre"
    assert got["赵敏"].role == "grid_responsible"
    # B岗 by name and by phone
    assert wang.deputy_id == got["李海燕"].id and got["陈立"].deputy_id == wang.id


async def test_unknown_role_lists_the_valid_ones_and_every_bad_row_is_reported(db, tree, clock):
    raw = ("区划代码,姓名,角色,手机号码\n"
           "331081001001,王建国,grid_responsable,13812345678\n"
           "331081001001,,网格员,13812345679\n"
           "999,李四,网格员,not-a-phone\n"
           "331081001001,陈立,村级责任人,13812345681\n").encode("gb18030")
    async with db.session() as s:
        with pytest.raises(Invalid) as exc:
            await service.import_csv(s, path="p.csv", raw=raw, now=clock.now())
    err = exc.value
    lines = sorted({(e["line"], e["field"]) for e in err.extra["errors"]})
    assert lines == [(2, "role"), (3, "name"), (4, "phone"), (4, "region_code")]
    role_error = next(e for e in err.extra["errors"] if e["field"] == "role")
    assert "grid_responsable" in role_error["message"] and "grid_responsible" in role_error["message"]
    assert "网格责任人" in role_error["message_zh"] and "驻村干部" in role_error["message_zh"]
    assert "4 problem(s)" in err.message_en
    assert await people(db) == []  # nothing imported


async def test_b_post_must_name_someone_in_the_same_region(db, tree, clock):
    raw = ("区划代码,姓名,角色,手机号码,B岗\n331081001001,王建国,村级责任人,13812345678,不存在的人\n").encode()
    async with db.session() as s:
        with pytest.raises(Invalid) as exc:
            await service.import_csv(s, path="p.csv", raw=raw, now=clock.now())
    assert exc.value.extra["errors"][0]["field"] == "deputy"
