"""Gather concurrent single sends into one provider call (Aliyun SendBatchSms takes 100 numbers at once).

The dispatcher calls `send(message)` once per message, many at a time; an adapter whose platform has a batch
API submits each message here and gets its own result back. A group goes out when it is full or when its
first message has waited `max_wait` seconds, so a lone message is delayed by at most that much.

`send_many` is the direct form for a caller that already holds many messages (the dispatcher's batch
senders): grouped by key and cut at `max_size`, every call at once, no waiting for others to arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from channels.base import Message, SendResult


@dataclass
class Pending:
    message: Message
    payload: Any  # whatever the adapter prepared for this message (number, template values …)
    future: asyncio.Future[SendResult] = field(repr=False)


Flush = Callable[[Hashable, list[Pending]], Awaitable[list[SendResult]]]


class Coalescer:
    def __init__(self, flush: Flush, *, max_size: int, max_wait: float) -> None:
        self._flush = flush
        self.max_size = max_size
        self.max_wait = max_wait
        self._groups: dict[Hashable, list[Pending]] = {}
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0  # provider calls made (for metrics and tests)

    async def submit(self, key: Hashable, message: Message, payload: Any) -> SendResult:
        loop = asyncio.get_running_loop()
        pending = Pending(message, payload, loop.create_future())
        group = self._groups.setdefault(key, [])
        group.append(pending)
        if len(group) >= self.max_size:
            self._go(key)
        elif len(group) == 1:
            self._timers[key] = loop.call_later(self.max_wait, self._go, key)
        # A caller that gives up (the dispatcher's watchdog) must not cancel the batch the others wait on.
        return await asyncio.shield(pending.future)

    def _go(self, key: Hashable) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        group = self._groups.pop(key, None)
        if not group:
            return
        task = asyncio.get_running_loop().create_task(self._run(key, group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send_many(self, entries: list[tuple[Hashable, Message, Any]]) -> list[SendResult]:
        """(key, message, payload) → one result each, in order: one call per key and `max_size` messages."""
        loop = asyncio.get_running_loop()
        groups: dict[Hashable, list[tuple[int, Pending]]] = {}
        for i, (key, message, payload) in enumerate(entries):
            groups.setdefault(key, []).append((i, Pending(message, payload, loop.create_future())))
        calls = [(key, g[start:start + self.max_size]) for key, g in groups.items()
                 for start in range(0, len(g), self.max_size)]
        for key, part in calls:
            task = loop.create_task(self._run(key, [p for _, p in part]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        out: list[SendResult | None] = [None] * len(entries)
        for _, part in calls:
            for i, p in part:
                # Shielded as in submit: a caller that gives up must not cancel a call others share.
                out[i] = await asyncio.shield(p.future)
        return out  # type: ignore[return-value]

    async def _run(self, key: Hashable, group: list[Pending]) -> None:
        self.calls += 1
        try:
            results = await self._flush(key, group)
            if len(results) != len(group):
                raise RuntimeError(f"batch of {len(group)} answered with {len(results)} results")
        except Exception as exc:  # noqa: BLE001 — a bug must not strand the waiting senders
            results = [SendResult.transient("batch_error", f"{type(exc).__name__}: {exc}"[:500])] * len(group)
        for p, r in zip(group, results, strict=True):
            if not p.future.done():
                p.future.set_result(r)

    async def aclose(self) -> None:
        for key in list(self._groups):
            self._go(key)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
