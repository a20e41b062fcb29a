"""Only the notice feature writes the notice table: every other module asks it to."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "warning_service"
OWNER = PACKAGE / "notice"
ALIAS = re.compile(r"(\w+)\s*=\s*Notice\.__table__|(\w+)\s*,[^=\n]*=\s*Notice\.__table__")
SQL_WRITE = re.compile(r"\b(UPDATE\s+notice|INSERT\s+INTO\s+notice|DELETE\s+FROM\s+notice)\b(?!_)", re.IGNORECASE)


def writes_of_notice(source: str) -> list[str]:
    """Lines that write the notice table: ORM/Core statements on Notice or an alias of its table, raw SQL."""
    names = {"Notice"}
    for m in ALIAS.finditer(source):
        names.add(m.group(1) or m.group(2))
    # A tuple assignment such as `N, OUTBOX = Notice.__table__, OutboxMessage.__table__` names N.
    for m in re.finditer(r"^(\w+(?:\s*,\s*\w+)+)\s*=\s*(.+)$", source, re.M):
        targets = [t.strip() for t in m.group(1).split(",")]
        values = [v.strip() for v in m.group(2).split(",")]
        names |= {t for t, v in zip(targets, values, strict=False) if v == "Notice.__table__"}
    alts = "|".join(sorted(map(re.escape, names)))
    core = re.compile(rf"\b(update|insert|delete)\(\s*({alts})\b|session\.add\(\s*Notice\("
                      rf"|\b({alts})\.(insert|update|delete)\(")
    return [line.strip() for line in source.splitlines() if core.search(line) or SQL_WRITE.search(line)]


def test_no_module_outside_notice_writes_the_notice_table():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if OWNER in path.parents or "migrations" in path.parts:
            continue
        found = writes_of_notice(path.read_text(encoding="utf-8"))
        if found:
            offenders[str(path.relative_to(PACKAGE))] = found
    assert offenders == {}


def test_the_check_sees_each_way_of_writing():
    samples = ["await session.execute(update(Notice).where(Notice.id == 1))",
               "N = Notice.__table__\nawait s.execute(update(N).values(state='x'))",
               "N, W = Notice.__table__, EarlyWarning.__table__\nstmt = insert(N)",
               "text('UPDATE notice SET state = 1')", "session.add(Notice(warning_id=1))"]
    assert all(writes_of_notice(s) for s in samples)
    assert writes_of_notice("text('UPDATE notice_feedback SET x = 1'); select(Notice)") == []
