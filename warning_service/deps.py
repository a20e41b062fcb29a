"""Request dependencies: the session, the clock, the current user and their scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

import jwt
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.actor import Actor
from warning_service.auth.models import User
from warning_service.auth.service import decode_token
from warning_service.config import Settings
from warning_service.errors import DomainError, Forbidden
from warning_service.region.models import Region
from warning_service.region.scope import Scope

TOKEN_COOKIE = "ws_token"
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


class Unauthorized(DomainError):
    status_code = 401
    code = "unauthorized"


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed when the handler returns without error."""
    async with request.app.state.db.session() as session:
        yield session


async def get_now(request: Request) -> datetime:
    return request.app.state.clock.now()


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
NowDep = Annotated[datetime, Depends(get_now)]


@dataclass
class Principal:
    """The authenticated user and the region subtree they may see and act on."""

    user: User
    scope: Region

    @property
    def actor(self) -> str:
        return f"user:{self.user.username}"

    def as_actor(self) -> Actor:
        return Actor(name=self.actor, scope_path=self.scope.path, scope_code=self.scope.code, user_id=self.user.id)

    def covers(self, region: Region) -> bool:
        return self.covers_path(region.path)

    def covers_path(self, path: str) -> bool:
        return Scope(self.scope.path).covers(path)

    def require_covers(self, region: Region) -> None:
        if not self.covers(region):
            raise Forbidden(f"region {region.code} is outside your scope {self.scope.code}",
                            f"区划 {region.code} 不在您的管辖范围 {self.scope.code} 内", field="region")


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_same_origin(request: Request, settings: Settings) -> None:
    """CSRF: a cookie-authenticated write must come from our own pages (Origin, else Referer, names us).

    The cookie is sent by the browser whatever page started the request; a bearer token is not, so bearer
    requests need no such check. Our own origin is PUBLIC_BASE_URL, or the host the browser addressed.
    """
    if request.method in SAFE_METHODS:
        return
    claimed = request.headers.get("origin") or request.headers.get("referer")
    ours = {_origin(settings.public_base_url), _origin(str(request.base_url))}
    if not claimed or claimed == "null" or _origin(claimed) not in ours:
        raise Forbidden("cross-site request refused: a cookie-authenticated change must come from this "
                        "service's own pages (Origin or Referer), or use a bearer token",
                        "已拒绝跨站请求:使用登录 Cookie 的修改操作必须来自本系统页面,或改用 Bearer 令牌",
                        field="origin")


async def get_principal(request: Request, session: SessionDep, settings: SettingsDep,
                        token: Annotated[str | None, Depends(oauth2_scheme)]) -> Principal:
    # Browser pages (the auditors' console) carry the same token in an HttpOnly cookie.
    if not token and request.cookies.get(TOKEN_COOKIE):
        token = request.cookies[TOKEN_COOKIE]
        check_same_origin(request, settings)
    if not token:
        raise Unauthorized("missing bearer token", "缺少登录令牌")
    try:
        claims = decode_token(token, secret=settings.secret_key.get_secret_value())
        user_id = int(claims["sub"])
    except (jwt.PyJWTError, ValueError):
        raise Unauthorized("invalid or expired token", "令牌无效或已过期") from None
    user = await session.get(User, user_id)
    if user is None or not user.active:
        raise Unauthorized("user disabled or removed", "用户已停用或不存在")
    if claims.get("ver", 0) != user.token_version:
        raise Unauthorized("token revoked (logged out)", "令牌已注销,请重新登录")
    scope = await session.get(Region, user.region_code)
    if scope is None:
        raise Forbidden("your scope region no longer exists", "您的管辖区划已不存在")
    return Principal(user=user, scope=scope)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_role(*roles: str, admin: bool = True):
    """Dependency: the caller must hold one of `roles` (admins always may, unless `admin=False`)."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not (admin and principal.user.role == "admin") and principal.user.role not in roles:
            raise Forbidden(f"role {principal.user.role} may not do this (needs {' or '.join(roles)})",
                            f"角色 {principal.user.role} 无权执行此操作")
        return principal

    return check


DutyOfficer = Annotated[Principal, Depends(require_role("duty_officer"))]
Auditor = Annotated[Principal, Depends(require_role("auditor"))]
Reader = Annotated[Principal, Depends(require_role("duty_officer", "leader", "auditor"))]
# 审核签发 is a 带班领导's personal act, recorded with their name: not an admin's.
Approver = Annotated[Principal, Depends(require_role("leader", admin=False))]
Admin = Annotated[Principal, Depends(require_role())]
