"""Login and user administration."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from warning_service.auth import service
from warning_service.auth.models import Token, UserPublic
from warning_service.auth.throttle import throttled_authenticate
from warning_service.clock import utcnow
from warning_service.deps import Admin, CurrentPrincipal, NowDep, SessionDep, SettingsDep, Unauthorized
from warning_service.ledger import service as ledger
from warning_service.region import service as regions

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post("/auth/token", response_model=Token, responses={429: {"description": "too many failed logins"}})
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request,
                settings: SettingsDep) -> Token:
    """Exchange username and password for a bearer token (failed attempts are throttled per address and user)."""
    user = await throttled_authenticate(request.app.state.db, throttle=request.app.state.runtime.login_throttle,
                                        address=request.client.host if request.client else "unknown",
                                        username=form.username, password=form.password, now=utcnow())
    if user is None:
        raise Unauthorized("wrong username or password", "用户名或密码错误")
    # Tokens live in wall-clock time even when the service runs on a simulated clock.
    token = service.issue_token(user=user, secret=settings.secret_key.get_secret_value(), now=utcnow(),
                                minutes=settings.access_token_minutes)
    return Token(access_token=token, expires_in=settings.access_token_minutes * 60)


@router.post("/auth/logout", status_code=204)
async def logout(principal: CurrentPrincipal, session: SessionDep) -> None:
    """Revoke every token of the current user (log out everywhere)."""
    await service.revoke_tokens(session, user=principal.user)


@router.get("/auth/me", response_model=UserPublic)
async def me(principal: CurrentPrincipal) -> UserPublic:
    """The current user, role and scope."""
    return UserPublic.model_validate(principal.user, from_attributes=True)


class UserCreate(BaseModel):
    username: str
    password: str
    role: str
    region_code: str


@router.post("/users", response_model=UserPublic, status_code=201)
async def create_user(body: UserCreate, principal: Admin, session: SessionDep, now: NowDep) -> UserPublic:
    """Create a user inside the admin's own scope."""
    principal.require_covers(await regions.get(session, code=body.region_code))
    user = await service.create_user(session, username=body.username, password=body.password, role=body.role,
                                     region_code=body.region_code, now=now)
    await ledger.append(session, at=now, actor=principal.actor, action="user.created", subject_type="user",
                        subject_id=user.id, details={"username": user.username, "role": user.role,
                                                    "region_code": user.region_code})
    return UserPublic.model_validate(user, from_attributes=True)
