"""A served process settles its heap once started; an app built by a test never freezes anything."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

from tests.conftest import make_settings
from warning_service import heap, main
from warning_service.offload import Pool


def test_settling_freezes_what_exists_and_collects_the_young_less_often():
    # In a process of its own: frozen objects are never freed, and this one is pytest's.
    code = ("import gc; import warning_service.main; from warning_service import heap; "
            "before = gc.get_freeze_count(); heap.settle(); print(before, gc.get_freeze_count() > 50_000, "
            "gc.get_threshold())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 2)
    assert out[0] == "0" and out[1] == "True"
    assert out[2].strip() == str((heap.YOUNG_THRESHOLD, *heap.OLDER_THRESHOLDS))


async def test_the_served_app_settles_its_heap_once_started_and_a_tests_app_does_not(db, runtime, monkeypatch,
                                                                                      tmp_path):
    settled: list[str] = []
    monkeypatch.setattr(heap, "settle", lambda: settled.append("settled"))
    given = main.create_app(make_settings(db), runtime=runtime, start_worker=False)
    async with given.router.lifespan_context(given):
        pass
    assert settled == []
    served = main.create_app(make_settings(db, database_url=f"sqlite:///{tmp_path}/served.db"), start_worker=False)
    async with served.router.lifespan_context(served):
        assert settled == ["settled"]


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def _collector_on() -> bool:
    return gc.isenabled()


def test_a_batch_task_runs_with_the_collector_paused_and_leaves_no_cycle_behind():
    seen: list[bool] = []
    made: list[weakref.ref[_Node]] = []

    def task() -> int:
        seen.append(gc.isenabled())
        made.append(weakref.ref(_Node()))
        return 7

    assert heap.run_paused(task) == 7
    assert seen == [False] and gc.isenabled()
    assert made[0]() is None  # collected once the task ended


async def test_pool_children_run_their_tasks_with_the_collector_paused():
    pool = Pool(workers=1)
    try:
        assert await pool.run(_collector_on) is False
    finally:
        pool.shutdown()
