"""转移避险: danger zones, the households in them and who moves them, shelters, special people and places,
and the evacuation tasks a warning opens.

A zone (and a special person or place) says from which level of which hazard it must be cleared in
`evac_threshold` rows — one per hazard — so issuing finds what a warning's hazard × level reaches with a
join, not a scan of free text. Each household has one 包户责任人 (a person of the roster): 一对一包干.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from pydantic import Field as PField
from sqlalchemy import Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from warning_service.db import UTCDateTime

# The outbox columns an evacuation message with no notice fills (a 解除转移 to a shelter, a shelter manager's link).
MESSAGE_COLUMNS = ["warning_id", "revision", "kind", "channel", "address", "region_code", "priority", "status",
                   "attempts", "next_attempt_at", "idempotency_key", "created_at", "updated_at"]


class ZoneKind(StrEnum):
    mountain_torrent = "mountain_torrent"  # 山洪危险区
    geo_hazard = "geo_hazard"  # 地质灾害隐患点
    dilapidated_house = "dilapidated_house"  # 危旧房
    low_lying = "low_lying"  # 低洼易涝区
    seawall_outside = "seawall_outside"  # 海塘外/沿海
    work_shed = "work_shed"  # 工棚
    other = "other"


ZONE_KIND_ZH = {
    "mountain_torrent": "山洪危险区",
    "geo_hazard": "地质灾害隐患点",
    "dilapidated_house": "危旧房",
    "low_lying": "低洼易涝区",
    "seawall_outside": "海塘外/沿海",
    "work_shed": "工棚",
    "other": "其他",
}


class Vulnerable(StrEnum):
    elderly = "elderly"
    disabled = "disabled"
    pregnant = "pregnant"
    ill = "ill"
    child = "child"
    alone = "alone"


VULNERABLE_ZH = {
    "elderly": "老人",
    "disabled": "残疾",
    "pregnant": "孕产妇",
    "ill": "重病",
    "child": "儿童",
    "alone": "独居",
}


class SpecialPersonCategory(StrEnum):
    elderly_alone = "elderly_alone"
    disabled = "disabled"
    pregnant = "pregnant"
    seriously_ill = "seriously_ill"
    other = "other"


SPECIAL_PERSON_ZH = {
    "elderly_alone": "独居老人",
    "disabled": "残疾人",
    "pregnant": "孕产妇",
    "seriously_ill": "重病患者",
    "other": "其他特殊人员",
}


class SpecialPlaceCategory(StrEnum):
    school = "school"
    nursing_home = "nursing_home"
    hospital = "hospital"
    construction_site = "construction_site"
    enterprise = "enterprise"
    scenic_area = "scenic_area"
    other = "other"


SPECIAL_PLACE_ZH = {
    "school": "学校",
    "nursing_home": "养老院",
    "hospital": "医院",
    "construction_site": "在建工地",
    "enterprise": "园区企业",
    "scenic_area": "景区",
    "other": "其他特殊场所",
}
# What the contact of each kind of place is told to do (the 姜堰 plan's 特殊场所传递机制).
SPECIAL_PLACE_ACTION = {
    "school": "学校立即停课,组织师生就地避险或安全转移,严禁学生冒险返家",
    "nursing_home": "养老院立即组织老人转移至安全场所,落实专人看护",
    "hospital": "医院做好病人转移和应急供电准备,低层病区人员上移",
    "construction_site": "工地立即停工,撤离工棚和施工人员,加固塔吊设施",
    "enterprise": "企业停产撤人,转移低洼区域员工和危化品",
    "scenic_area": "景区立即关闭,疏散游客,劝返在途人员",
    "other": "立即组织人员避险转移",
}
SPECIAL_PERSON_ACTION = "请立即上门,帮扶其转移至安全场所并确认安置"


class TaskStatus(StrEnum):
    pending = "pending"  # 待转移
    moved = "moved"  # 已转移(安置场所)
    with_relatives = "with_relatives"  # 投亲靠友
    refused = "refused"  # 拒绝转移
    unreachable = "unreachable"  # 不在家/联系不上
    returned = "returned"  # 已返回


TASK_STATUS_ZH = {
    "pending": "待转移",
    "moved": "已转移",
    "with_relatives": "投亲靠友",
    "refused": "拒绝转移",
    "unreachable": "不在家/联系不上",
    "returned": "已返回",
}
# Out of harm's way: counted as 已转移 on the board.
MOVED_STATUSES: tuple[str, ...] = (TaskStatus.moved, TaskStatus.with_relatives)
# Still where the danger is: counted as 未转移.
NOT_MOVED_STATUSES: tuple[str, ...] = (TaskStatus.pending, TaskStatus.unreachable)


class Subject(StrEnum):
    zone = "zone"
    person = "person"
    place = "place"


def deferred_notice_fk() -> ForeignKey:
    """A task's notice is written after the task (its id is reserved first, so one INSERT … SELECT can link
    each household to its own notice); the reference is checked at commit."""
    return ForeignKey("notice.id", deferrable=True, initially="DEFERRED")


class EvacThreshold(SQLModel, table=True):
    """From which level of `hazard` the zone (special person, special place) must be cleared."""

    __tablename__ = "evac_threshold"
    __table_args__ = (Index("ix_evac_threshold_hazard", "hazard", "subject", "min_rank"),)

    subject: str = Field(primary_key=True, max_length=8)  # a Subject
    subject_id: int = Field(primary_key=True)
    hazard: str = Field(primary_key=True, max_length=24)
    min_rank: int  # LEVEL_RANK of the lowest level that requires clearing


class DangerZone(SQLModel, table=True):
    __tablename__ = "danger_zone"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=24)
    region_code: str = Field(foreign_key="region.code", max_length=32, index=True)
    # The village and town it lies in, kept so the board groups by them without walking paths.
    village_code: str | None = Field(default=None, max_length=32, index=True)
    town_code: str | None = Field(default=None, max_length=32, index=True)
    note: str | None = Field(default=None, max_length=500)
    active: bool = True
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class Household(SQLModel, table=True):
    __tablename__ = "evac_household"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True)
    zone_id: int = Field(foreign_key="danger_zone.id", index=True)
    region_code: str = Field(foreign_key="region.code", max_length=32, index=True)  # the zone's
    name: str = Field(max_length=100)  # 户主
    people: int
    phone: str | None = Field(default=None, max_length=20)
    vulnerable: str = Field(default="", max_length=120)  # comma-separated Vulnerable values
    keeper_id: int = Field(foreign_key="person.id", index=True)  # 包户责任人
    active: bool = True
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class Shelter(SQLModel, table=True):
    __tablename__ = "shelter"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=200)
    region_code: str = Field(foreign_key="region.code", max_length=32, index=True)
    capacity: int
    manager_id: int | None = Field(default=None, foreign_key="person.id")
    address: str | None = Field(default=None, max_length=300)
    active: bool = True
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class SpecialPerson(SQLModel, table=True):
    __tablename__ = "special_person"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=100)
    category: str = Field(max_length=24)
    region_code: str = Field(foreign_key="region.code", max_length=32, index=True)
    phone: str | None = Field(default=None, max_length=20)
    helper_id: int = Field(foreign_key="person.id", index=True)  # 结对帮扶人
    note: str | None = Field(default=None, max_length=500)
    active: bool = True
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class SpecialPlace(SQLModel, table=True):
    __tablename__ = "special_place"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=200)
    category: str = Field(max_length=24)
    region_code: str = Field(foreign_key="region.code", max_length=32, index=True)
    contact_id: int = Field(foreign_key="person.id", index=True)
    note: str | None = Field(default=None, max_length=500)
    active: bool = True
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class EvacuationTask(SQLModel, table=True):
    """转移任务: one household to move for one warning. Its 包户责任人 has ONE notice of reason evacuation per
    warning (found by ix_notice_evacuation), shared by the tasks of all the households they keep: one SMS, one 叫应,
    one chase per keeper; the board still counts households."""

    __tablename__ = "evacuation_task"
    # Few indexes: a county opens 20,000 of these inside the warning's transaction, and every index is paid
    # for by each row. The board reads a warning's tasks through the (warning_id, household_id) key.
    __table_args__ = (UniqueConstraint("warning_id", "household_id", name="uq_evacuation_task_household"),)

    id: int | None = Field(default=None, primary_key=True)
    # No foreign keys: each costs every row of a county's 16,000 a trigger call inside the issue transaction
    # (measured: a third of opening the tasks, plus the deferred check at commit). The one writer copies
    # these ids from rows it reads in the same statement (the keeper's notice, the household and its zone,
    # the warning; a shelter is checked before it is named), and none of those rows is ever deleted:
    # households, zones and shelters are deactivated, notices closed.
    notice_id: int = Field(index=True)  # the keeper's one notice of this warning
    warning_id: int
    household_id: int
    zone_id: int
    # The 包户责任人 the task was opened for (the household's keeper may change later; the notice is theirs).
    keeper_id: int | None = None
    status: str = Field(max_length=16, default=TaskStatus.pending)
    shelter_id: int | None = None
    people_moved: int | None = None
    note: str | None = Field(default=None, max_length=500)
    arrived_people: int | None = None  # recorded by the shelter's manager
    arrived_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    departed_people: int | None = None  # left the shelter again, recorded by its manager
    departed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # 防回流: marked returned while the area was not yet released.
    returned_early: bool = False
    released_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # 解除转移 reached it
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class ShelterLink(SQLModel, table=True):
    """The shelter manager's page of one warning (/s/<token>, token = HMAC of this id under its own key):
    opened when the warning opens tasks in the shelter's area, expiring after 解除转移 plus the grace period."""

    __tablename__ = "shelter_link"
    __table_args__ = (UniqueConstraint("warning_id", "shelter_id", name="uq_shelter_link"),)

    id: int | None = Field(default=None, primary_key=True)
    warning_id: int = Field(foreign_key="early_warning.id")
    shelter_id: int = Field(foreign_key="shelter.id")
    manager_id: int = Field(foreign_key="person.id")
    # The outbox row that carries the link (its renderer finds the link through it).
    outbox_id: int | None = Field(default=None, index=True)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)


class SpecialNotice(SQLModel, table=True):
    """The special person or place a notice of reason `special` is about (its helper or contact is told)."""

    __tablename__ = "special_notice"
    __table_args__ = (UniqueConstraint("warning_id", "subject", "subject_id", name="uq_special_notice_subject"),)

    notice_id: int = Field(sa_column=Column(Integer, deferred_notice_fk(), primary_key=True))
    warning_id: int = Field(foreign_key="early_warning.id", index=True)
    subject: str = Field(max_length=8)  # Subject.person | Subject.place
    subject_id: int


class EvacuationRelease(SQLModel, table=True):
    """解除转移 of one area for one warning: people there may go home."""

    __tablename__ = "evacuation_release"

    id: int | None = Field(default=None, primary_key=True)
    warning_id: int = Field(foreign_key="early_warning.id", index=True)
    region_code: str = Field(foreign_key="region.code", max_length=32)
    tasks: int = 0
    actor: str = Field(max_length=100)
    at: datetime = Field(sa_type=UTCDateTime)


# --- API shapes ----------------------------------------------------------------------------------------------


class ZoneIn(BaseModel):
    code: str = PField(min_length=1, max_length=40)
    name: str = PField(min_length=1, max_length=200)
    kind: ZoneKind
    region_code: str = PField(min_length=1, max_length=32)
    thresholds: dict[str, str] = PField(min_length=1)  # hazard → lowest level that requires clearing
    note: str | None = PField(default=None, max_length=500)


class HouseholdIn(BaseModel):
    code: str = PField(min_length=1, max_length=40)
    zone_id: int
    name: str = PField(min_length=1, max_length=100)
    people: int = PField(ge=1, le=200)
    phone: str | None = None
    vulnerable: list[Vulnerable] = PField(default_factory=list)
    keeper_id: int


class ShelterIn(BaseModel):
    code: str = PField(min_length=1, max_length=40)
    name: str = PField(min_length=1, max_length=200)
    region_code: str = PField(min_length=1, max_length=32)
    capacity: int = PField(ge=1, le=100_000)
    manager_id: int | None = None
    address: str | None = PField(default=None, max_length=300)


class SpecialPersonIn(BaseModel):
    code: str = PField(min_length=1, max_length=40)
    name: str = PField(min_length=1, max_length=100)
    category: SpecialPersonCategory
    region_code: str = PField(min_length=1, max_length=32)
    phone: str | None = None
    helper_id: int
    thresholds: dict[str, str] = PField(min_length=1)
    note: str | None = PField(default=None, max_length=500)


class SpecialPlaceIn(BaseModel):
    code: str = PField(min_length=1, max_length=40)
    name: str = PField(min_length=1, max_length=200)
    category: SpecialPlaceCategory
    region_code: str = PField(min_length=1, max_length=32)
    contact_id: int
    thresholds: dict[str, str] = PField(min_length=1)
    note: str | None = PField(default=None, max_length=500)


class TaskDecision(BaseModel):
    """What the 包户责任人 reports for one household."""

    status: TaskStatus
    shelter_id: int | None = None
    people_moved: int | None = PField(default=None, ge=0, le=200)
    note: str | None = PField(default=None, max_length=500)


class Arrival(BaseModel):
    """A shelter's manager records people of a household arriving."""

    task_id: int
    people: int = PField(ge=1, le=200)


class Departure(BaseModel):
    """People of a household leaving a shelter (to relatives, to hospital, home after 解除转移)."""

    task_id: int
    people: int = PField(ge=1, le=200)


class ReleaseIn(BaseModel):
    region_code: str = PField(min_length=1, max_length=32)
