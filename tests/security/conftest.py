from __future__ import annotations

import pytest

from tests.acknowledgment.conftest import TWILIO_TOKEN
from tests.conftest import make_settings

TRUSTED_UPSTREAM = "33000041600000"


@pytest.fixture
def settings(db):
    """Shared test settings with a Twilio token (signed webhooks) and one trusted CAP upstream."""
    return make_settings(db, twilio_auth_token=TWILIO_TOKEN, cap_trusted_senders=TRUSTED_UPSTREAM)
