from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from channels.sms_tencent import TencentSmsAdapter, TencentSmsConfig
from channels.templates import TemplateSet
from tests.channels.fake_tencent import (
    REGISTERED,
    SDK_APP_ID,
    SECRET_ID,
    SECRET_KEY,
    SIGN_NAME,
    TEMPLATES,
    FakeTencent,
    start,
)


@pytest.fixture
def smtp_server():
    """A running SMTP server and its inbox; stopped after the test."""
    from tests.channels.smtp_server import Inbox, start_smtp

    inbox = Inbox()
    controller = start_smtp(inbox)
    yield controller, inbox
    controller.stop()


@pytest.fixture
async def fake_tencent() -> AsyncIterator[FakeTencent]:
    """The local Tencent server (signatures checked) with the templates of TEMPLATES registered."""
    server = FakeTencent(templates=dict(REGISTERED))
    runner = await start(server)
    yield server
    await runner.cleanup()


def adapter_for(fake: FakeTencent, *, secret: str = SECRET_KEY, templates: str = TEMPLATES,
                endpoint: str | None = None, timeout: float = 15.0, max_connections: int = 100) -> TencentSmsAdapter:
    """The real adapter pointed at `fake`. The timeout is generous: on a loaded machine the local server can take
    seconds; a test that means to time out says so."""
    return TencentSmsAdapter(TencentSmsConfig(
        secret_id=SECRET_ID, secret_key=secret, sdk_app_id=SDK_APP_ID, sign_name=SIGN_NAME,
        templates=TemplateSet.parse(templates, setting="TENCENT_SMS_TEMPLATES", default_max=6),
        endpoint=endpoint or fake.base_url, timeout=timeout, batch_wait=0.02, max_connections=max_connections))


@pytest.fixture
async def tencent(fake_tencent: FakeTencent) -> AsyncIterator[TencentSmsAdapter]:
    adapter = adapter_for(fake_tencent)
    yield adapter
    await adapter.aclose()
