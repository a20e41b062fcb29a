"""Responsible persons (责任人): who must be reached in each region."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from pydantic import Field as PField
from sqlalchemy import Column, ForeignKey, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from warning_service import labels
from warning_service.db import UTCDateTime


class PersonRole(StrEnum):
    grid_responsible = "grid_responsible"
    village_responsible = "village_responsible"
    town_responsible = "town_responsible"
    county_responsible = "county_responsible"
    disaster_info_officer = "disaster_info_officer"
    geo_hazard_monitor = "geo_hazard_monitor"
    torrent_warner = "torrent_warner"
    shelter_manager = "shelter_manager"
    village_cadre = "village_cadre"
    danger_house_liaison = "danger_house_liaison"
    county_duty = "county_duty"
    duty_leader = "duty_leader"    # 带班领导 of a duty room (duty/)
    duty_officer = "duty_officer"  # 值班员
    member_unit = "member_unit"    # 成员单位联络员, called to 到岗 by an emergency response


ROLE_ZH = labels.ROLE
# What rosters call the same roles (import accepts these as well as the codes and ROLE_ZH).
ROLE_ALIASES = {
    "网格员": "grid_responsible", "网格长": "grid_responsible", "村级责任人": "village_responsible",
    "村防汛责任人": "village_responsible", "村(社区)防汛责任人": "village_responsible",
    "乡镇责任人": "town_responsible", "乡镇(街道)防汛责任人": "town_responsible", "县级责任人": "county_responsible",
    "地灾群测群防员": "geo_hazard_monitor", "群测群防员": "geo_hazard_monitor", "山洪预警员": "torrent_warner",
    "包村干部": "village_cadre", "驻村(包村)干部": "village_cadre", "避灾点管理员": "shelter_manager",
    "防指值班室": "county_duty", "县防指值班": "county_duty",
}

# The role that answers for a region of each level when a warning escalates upward.
RESPONSIBLE_ROLE_BY_LEVEL = {
    "grid": "grid_responsible",
    "village": "village_responsible",
    "town": "town_responsible",
    "county": "county_responsible",
}


class Person(SQLModel, table=True):
    __tablename__ = "person"
    __table_args__ = (UniqueConstraint("region_code", "role", "phone", name="uq_person_region_role_phone"),)

    id: int | None = Field(default=None, primary_key=True)
    region_code: str = Field(foreign_key="region.code", index=True, max_length=32)
    name: str = Field(max_length=100)
    role: str = Field(max_length=40, index=True)
    phone: str | None = Field(default=None, max_length=20, index=True)
    email: str | None = Field(default=None, max_length=254)
    title: str | None = Field(default=None, max_length=100)  # 职务, e.g. 村委会主任
    unit: str | None = Field(default=None, max_length=200)  # 单位
    backup_phone: str | None = Field(default=None, max_length=20)  # 备用电话, E.164
    active: bool = Field(default=True)
    # The B post: called before the warning escalates to the level above.
    deputy_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("person.id", ondelete="SET NULL"), nullable=True)
    )
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class PersonCreate(BaseModel):
    region_code: str = PField(min_length=1, max_length=32)
    name: str = PField(min_length=1, max_length=100)
    role: str = PField(min_length=1, max_length=40, pattern=r"^[a-z][a-z_]*$")
    phone: str | None = None
    email: str | None = None
    active: bool = True
    deputy_id: int | None = None


class PersonUpdate(BaseModel):
    name: str | None = PField(default=None, min_length=1, max_length=100)
    role: str | None = PField(default=None, min_length=1, max_length=40, pattern=r"^[a-z][a-z_]*$")
    phone: str | None = None
    email: str | None = None
    active: bool | None = None
    deputy_id: int | None = None
    region_code: str | None = None


class PersonPublic(BaseModel):
    id: int
    region_code: str
    name: str
    role: str
    phone: str | None
    email: str | None
    active: bool
    deputy_id: int | None
