from __future__ import annotations

import pytest

from tests.conftest import make_settings
from tests.factories import build_tree, login, make_user

# The provincial observatory's sender code used by the CAP fixtures; the relay keeps only trusted senders.
TRUSTED_UPSTREAM = "33000041600000"


@pytest.fixture
def settings(db):
    return make_settings(db, cap_trusted_senders=TRUSTED_UPSTREAM)


@pytest.fixture
async def tree(db, clock):
    t = await build_tree(db, now=clock.now())
    await make_user(db, username="wl_duty", role="duty_officer", region="331081", now=clock.now())
    await make_user(db, username="zj_duty", role="duty_officer", region="33", now=clock.now())
    await make_user(db, username="wl_audit", role="auditor", region="331081", now=clock.now())
    return t


@pytest.fixture
async def duty(client, tree):
    return await login(client, "wl_duty")


@pytest.fixture
async def province_duty(client, tree):
    return await login(client, "zj_duty")


def red_typhoon(targets, **extra):
    return {"hazard": "typhoon", "level": "red", "description": "台风“烟花”预计今夜登陆,最大风力14级。",
            "targets": targets, **extra}
