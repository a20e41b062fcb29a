"""Administrative regions: province → city → county → town → village → grid."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel
from sqlmodel import Field, SQLModel

from warning_service import labels
from warning_service.db import PathString


class RegionLevel(StrEnum):
    province = "province"
    city = "city"
    county = "county"
    town = "town"
    village = "village"
    grid = "grid"


LEVEL_ORDER: dict[str, int] = {lvl.value: i for i, lvl in enumerate(RegionLevel)}
LEVEL_ZH = labels.REGION_LEVEL


class Region(SQLModel, table=True):
    __tablename__ = "region"

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    level: str = Field(max_length=16, index=True)
    parent_code: str | None = Field(default=None, foreign_key="region.code", index=True, max_length=32)
    # Materialized path "/33/3310/331081/": every descendant's path starts with it, so a subtree is
    # one index range scan however deep or wide.
    path: str = Field(sa_type=PathString, index=True, unique=True)
    depth: int


class RegionPublic(BaseModel):
    code: str
    name: str
    level: str
    parent_code: str | None
    path: str
