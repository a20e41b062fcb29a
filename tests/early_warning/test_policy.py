from __future__ import annotations

import pytest

from warning_service.early_warning.policy import PolicyError, load_policy, parse_duration


@pytest.mark.parametrize(("raw", "seconds"), [("90s", 90), ("3m", 180), ("1h", 3600), ("250ms", 0.25), (45, 45)])
def test_durations_read_like_people_write_them(raw, seconds):
    assert parse_duration(raw) == seconds


def test_defaults_follow_zhejiang_practice():
    book = load_policy(None)
    red = book.resolve("typhoon", "red")
    assert red.ack_required and red.ack_deadline == 180 and red.recall_channel == "voice" and red.recall_count == 3
    assert set(red.roles) == {"grid_responsible", "village_responsible", "village_cadre", "town_responsible",
                              "county_duty"}
    # orange goes straight to the grid (落实直达网格责任人的预警叫应机制)
    assert set(book.resolve("rainstorm", "orange").roles) == {"grid_responsible", "village_responsible",
                                                               "village_cadre"}
    assert "torrent_warner" in book.resolve("mountain_torrent", "red").roles
    blue = book.resolve("fog", "blue")
    assert blue.roles == ["village_responsible"] and not blue.ack_required


def test_file_overrides_per_level_and_hazard(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("levels:\n  orange:\n    ack_deadline: 90s\nhazards:\n  mountain_torrent:\n    orange:\n"
                 "      roles: [grid_responsible, torrent_warner]\n", encoding="utf-8")
    book = load_policy(f)
    assert book.resolve("rainstorm", "orange").ack_deadline == 90
    assert book.resolve("mountain_torrent", "orange").roles == ["grid_responsible", "torrent_warner"]
    assert book.resolve("mountain_torrent", "orange").ack_deadline == 90


@pytest.mark.parametrize(("text", "key"), [
    ('[levels.red]\nack_deadline = "3x"\n', "levels.red.ack_deadline"),
    ('[levels.purple]\nack_deadline = "3m"\n', "levels.purple"),
    ('[hazards.typhoon.red]\nchannels = ["pigeon"]\n', "hazards.typhoon.red.channels"),
    ('[levels.red]\nrecall_count = -1\n', "levels.red.recall_count"),
    ('[levels.red]\nunknown_key = 1\n', "levels.red.unknown_key"),
    ("[levels.red\n", "not valid TOML"),
])
def test_bad_policy_file_names_the_key_and_reason(tmp_path, text, key):
    f = tmp_path / "p.toml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match=key.replace(".", r"\.")):
        load_policy(f)


def test_bad_policy_stops_start_up(tmp_path):
    import asyncio

    from warning_service.config import Settings
    from warning_service.runtime import build_runtime

    f = tmp_path / "p.toml"
    f.write_text('[levels.red]\nack_deadline = "soon"\n', encoding="utf-8")
    settings = Settings(_env_file=None, policy_file=f, database_url="sqlite:///:memory:")  # type: ignore[call-arg]
    with pytest.raises(SystemExit, match="levels.red.ack_deadline"):
        asyncio.run(build_runtime(settings))
