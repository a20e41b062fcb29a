"""The report's hand-built warning (tests/report/conftest.py), exported through background jobs."""

from __future__ import annotations

import pytest

from tests.conftest import make_settings
from tests.report.conftest import case, feedback_case, tree  # noqa: F401 — fixtures shared with the reports


@pytest.fixture
def settings(db, tmp_path):
    return make_settings(db, export_dir=tmp_path / "exports", export_lease_seconds=30)
