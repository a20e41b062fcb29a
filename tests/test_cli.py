from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from tests.factories import TREE_CSV
from warning_service.cli import app
from warning_service.config import get_settings

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch):
    db = tmp_path / "cli.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("SECRET_KEY", "cli-test-secret-0123456789")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def count(db, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_import_commands_are_idempotent_and_report_counts(env, tmp_path):
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    f = tmp_path / "regions.csv"
    f.write_text(TREE_CSV, encoding="utf-8")
    r = runner.invoke(app, ["regions", "import", str(f)])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["regions", "import", str(f)]).exit_code == 0
    assert count(env, "region") == 11
    assert runner.invoke(app, ["regions", "add-grids", "--per-village", "2"]).exit_code == 0
    assert count(env, "region") == 19
    people = tmp_path / "people.csv"
    people.write_bytes("region_code,name,role,phone,email\r\n331081001001,王建国,village_responsible,13812345678,\r\n"
                       .encode("gb18030"))
    r = runner.invoke(app, ["people", "import", str(people)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "create", "--username", "duty", "--password", "long-password",
                            "--role", "duty_officer", "--region", "331081"])
    assert r.exit_code == 0, r.output
    assert count(env, "person") == 1 and count(env, "app_user") == 1


def test_bad_file_exits_non_zero_names_line_and_writes_nothing(env, tmp_path):
    runner.invoke(app, ["db", "upgrade"])
    f = tmp_path / "regions.csv"
    f.write_text(TREE_CSV + "331081001009,坏村,village,\n33,重复,province,\n", encoding="utf-8")
    r = runner.invoke(app, ["regions", "import", str(f)])
    assert r.exit_code == 1
    assert "line 13" in r.output and "parent_code" in r.output and "第 13 行" in r.output
    assert count(env, "region") == 0
    r = runner.invoke(app, ["regions", "import", str(tmp_path / "missing.csv")])
    assert r.exit_code == 1 and "not found" in r.output


def test_users_create_refuses_unknown_role(env):
    runner.invoke(app, ["db", "upgrade"])
    r = runner.invoke(app, ["users", "create", "--username", "x", "--password", "long-password", "--role", "king",
                            "--region", "33"])
    assert r.exit_code == 1 and "role" in r.output


def test_demo_prepares_data_once_and_reuses_it(env):
    from warning_service.demo import prepare_demo

    info = prepare_demo(get_settings())
    again = prepare_demo(get_settings())
    assert info["regions"] == again["regions"] > 2000
    assert info["people"] == again["people"] > 2000
    assert count(env, "app_user") == 4  # duty, leader (带班领导), auditor, admin


def test_audit_verify_prints_the_head_and_detects_a_rollback(env):
    import asyncio

    from warning_service.db import Database
    from warning_service.ledger import service as ledger

    runner.invoke(app, ["db", "upgrade"])

    async def record() -> None:
        from warning_service.clock import utcnow

        db = Database(f"sqlite+aiosqlite:///{env}")
        key = ledger.ledger_key(get_settings().secret_key.get_secret_value())
        async with db.session() as s:
            await ledger.append(s, at=utcnow(), actor="cli", action="test.one", subject_type="t", subject_id=1)
        async with db.session() as s:
            await ledger.seal(s, key=key)
        await db.dispose()

    asyncio.run(record())
    r = runner.invoke(app, ["audit", "verify"])
    assert r.exit_code == 0 and "--known-id 1 --known-hash" in r.output
    r = runner.invoke(app, ["audit", "verify", "--known-id", "1", "--known-hash", "0" * 64])
    assert r.exit_code == 1


def test_demo_port_moves_the_printed_addresses_and_the_message_links(env, monkeypatch):
    import warning_service.cli as cli

    served = {}
    monkeypatch.setattr(cli, "_serve", lambda settings, **kw: served.update(settings=settings, **kw))
    r = runner.invoke(app, ["demo", "--port", "19600"])
    assert r.exit_code == 0, r.output
    assert "http://127.0.0.1:19600/console/" in r.output and ":8000" not in r.output
    assert served["port"] == 19600 and served["settings"].public_base_url == "http://127.0.0.1:19600"


def test_an_explicit_public_base_url_wins_over_the_port(env, monkeypatch):
    import warning_service.cli as cli

    monkeypatch.setenv("PUBLIC_BASE_URL", "https://yj.example.gov.cn")
    get_settings.cache_clear()
    served = {}
    monkeypatch.setattr(cli, "_serve", lambda settings, **kw: served.update(settings=settings, **kw))
    r = runner.invoke(app, ["demo", "--port", "19600"])
    assert r.exit_code == 0 and "https://yj.example.gov.cn/docs" in r.output
    assert served["settings"].public_base_url == "https://yj.example.gov.cn"
