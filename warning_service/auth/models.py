"""Users of the console: admins, duty officers (值班员), leaders (带班领导) and auditors, each scoped to a region."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from sqlmodel import Field, SQLModel

from warning_service.db import UTCDateTime


class UserRole(StrEnum):
    admin = "admin"
    duty_officer = "duty_officer"
    auditor = "auditor"
    # 带班领导: signs off (审核签发) the warnings whose policy requires it, in their region.
    leader = "leader"


class User(SQLModel, table=True):
    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=20)
    region_code: str = Field(foreign_key="region.code", max_length=32)
    active: bool = True
    # Bumped on logout; a token carrying an older version is refused (see deps.get_principal).
    token_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(sa_type=UTCDateTime)


class UserPublic(BaseModel):
    id: int
    username: str
    role: str
    region_code: str
    active: bool


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
