from __future__ import annotations

import pytest


@pytest.fixture
def smtp_server():
    """A running SMTP server and its inbox; stopped after the test."""
    from tests.channels.smtp_server import Inbox, start_smtp

    inbox = Inbox()
    controller = start_smtp(inbox)
    yield controller, inbox
    controller.stop()
