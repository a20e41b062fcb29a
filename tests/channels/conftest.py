from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.delivery.fake_twilio import FakeTwilio, start


@pytest.fixture
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    runner = await start(fake)
    yield fake
    await runner.cleanup()


@pytest.fixture
def smtp_server():
    """A running SMTP server and its inbox; stopped after the test."""
    from tests.channels.smtp_server import Inbox, start_smtp

    inbox = Inbox()
    controller = start_smtp(inbox)
    yield controller, inbox
    controller.stop()
