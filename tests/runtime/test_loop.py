"""Which event loop our processes run on."""

from __future__ import annotations

import asyncio

import pytest

from warning_service import loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_runs_on_uvloop_when_it_is_installed() -> None:
    pytest.importorskip("uvloop")
    assert loop.chosen("auto") == "uvloop"
    assert loop.run(_loop_module()).startswith("uvloop")


def test_asyncio_is_the_way_back() -> None:
    assert loop.chosen("asyncio") == "asyncio"
    assert loop.run(_loop_module(), kind="asyncio").startswith("asyncio")


def test_asking_for_uvloop_where_it_is_missing_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "uvloop", None)
    assert loop.chosen("auto") == "asyncio"
    with pytest.raises(RuntimeError, match="EVENT_LOOP=uvloop"):
        loop.chosen("uvloop")
