"""Pool children yield the CPU to the process serving answers, from their first instant."""

from __future__ import annotations

import os
import time

from warning_service import offload
from warning_service.offload import CHILD_NICENESS, Pool


def test_a_pool_child_is_lowered_by_the_parent_before_it_imports_anything():
    # A plain child, no initializer: only the parent's renice can have lowered it this early.
    child = offload._Spawn().Process(target=time.sleep, args=(5,))
    child.start()
    try:
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == CHILD_NICENESS == 19
    finally:
        child.terminate()
        child.join(10)


async def test_pool_tasks_run_at_the_lowest_priority_and_replacements_too():
    pool = Pool(workers=1, tasks_per_child=1)  # each task in a new child, as exports do
    try:
        assert [await pool.run(os.nice, 0) for _ in range(2)] == [19, 19]
    finally:
        pool.shutdown()
