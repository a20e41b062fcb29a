"""Passwords (argon2), bearer tokens (signed JWT) and users."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.auth.models import User, UserRole
from warning_service.db import Database
from warning_service.errors import Conflict, Invalid
from warning_service.region import service as regions

_hasher = PasswordHasher()
# Verifying against a dummy hash when the user does not exist keeps response times equal.
_DUMMY_HASH = _hasher.hash("dummy-password-for-timing")
ALGORITHM = "HS256"
# argon2 is deliberately slow (~50 ms of CPU); run on the event loop it stalls every answer being recorded.
# Two threads bound what a flood of logins can take from the machine; the throttle refuses the rest early.
_verify_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2",
                                  initializer=lambda: _lower_priority())


def _lower_priority() -> None:
    """Hash threads (and the lane threads argon2 starts from them) yield the CPU to the event loop first."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # not Linux, or not permitted: bounded pool still applies
        pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


async def verify_password_off_loop(password: str, password_hash: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(_verify_pool, verify_password, password, password_hash)


async def authenticate(db: Database, *, username: str, password: str) -> User | None:
    """The active user with this password, or None. The look-up's connection is handed back before hashing:
    a flood of slow logins must not hold the pool that answers are recorded through."""
    async with db.session() as session:
        user = (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()
    if user is None:
        await verify_password_off_loop(password, _DUMMY_HASH)
        return None
    if not await verify_password_off_loop(password, user.password_hash) or not user.active:
        return None
    return user


def signing_key(secret: str) -> bytes:
    """A 256-bit key for tokens, derived so it never equals the ledger's or the links' key."""
    return hashlib.sha256(b"warning-service jwt v1:" + secret.encode()).digest()


def issue_token(*, user: User, secret: str, now: datetime, minutes: int) -> str:
    # `ver` ties the token to the user's token_version: logging out bumps it and every earlier token dies.
    payload = {"sub": str(user.id), "role": user.role, "scope": user.region_code, "ver": user.token_version,
               "iat": int(now.timestamp()), "exp": int((now + timedelta(minutes=minutes)).timestamp())}
    return jwt.encode(payload, signing_key(secret), algorithm=ALGORITHM)


def decode_token(token: str, *, secret: str) -> dict:
    return jwt.decode(token, signing_key(secret), algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})


async def revoke_tokens(session: AsyncSession, *, user: User) -> None:
    """Log out everywhere: tokens issued before now no longer authenticate."""
    user.token_version += 1
    await session.flush()


async def create_user(session: AsyncSession, *, username: str, password: str, role: str, region_code: str,
                      now: datetime) -> User:
    """Create a console user scoped to a region."""
    if role not in UserRole.__members__:
        raise Invalid(f"role must be one of {', '.join(UserRole)}", f"角色应为 {', '.join(UserRole)} 之一",
                      field="role")
    if len(password) < 8:
        raise Invalid("password must be at least 8 characters", "密码至少 8 位", field="password")
    if not username or len(username) > 64:
        raise Invalid("username must be 1-64 characters", "用户名长度应为 1-64", field="username")
    await regions.get(session, code=region_code)
    if (await session.execute(select(User.id).where(User.username == username))).first():
        raise Conflict(f"user {username!r} exists", f"用户 {username!r} 已存在", field="username")
    user = User(username=username, password_hash=hash_password(password), role=role, region_code=region_code,
                active=True, created_at=now)
    session.add(user)
    await session.flush()
    return user
