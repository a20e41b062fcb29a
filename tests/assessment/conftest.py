"""The report tests' hand-built warning, whose every figure is known, reused for the 通报 and the 复盘."""

from tests.report.conftest import case, feedback_case, tree  # noqa: F401
