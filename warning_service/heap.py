"""Garbage collection in a long-running server process (the API, a worker).

CPython frees almost everything by reference counting; the cyclic collector exists for cycles, and it walks
every tracked object of each generation it collects. After start-up a process of ours holds ~230,000 objects
that live as long as it does (modules, routes, SQLAlchemy mappers, templates, pools), and the collector
walked them again and again: in 40 s of link answers the API process spent 4.4 s in 12 full collections of
up to 0.76 s each, and 1.5 s more in middle ones — every one a stall of every request in flight (answers'
p99 is made of such stalls). Once the process has started, `settle` moves what exists out of the collector's
sight (`gc.freeze`) and collects the young generation less often; cycles made later are still collected.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Young objects are collected after this many net allocations (CPython's default is 700: on the answer path
# that is a collection every few requests, each walking whatever survived them).
YOUNG_THRESHOLD = 20_000
OLDER_THRESHOLDS = (10, 10)


def settle() -> None:
    """Call once the process has started (app lifespan, worker start): never in a process that builds and
    drops apps over and over (tests), whose frozen objects would never be freed."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)


def run_paused(fn: Callable[..., T], *args: Any) -> T:
    """Run one bounded batch task (an export, a big report, in a pool child) with the collector paused, and
    collect once at its end. Such a task allocates hundreds of thousands of objects that live until it returns,
    which sets off full collections over and over as it goes: a province report spent ~40 % of its CPU in
    them (own CPU 4.9–5.5 → 2.9–3.0 s, peak memory unchanged at ~300 MB: its garbage has no cycles)."""
    was = gc.isenabled()
    gc.disable()
    try:
        return fn(*args)
    finally:
        if was:
            gc.enable()
        gc.collect()
