"""A zero-latency adapter for benchmarks and tests: accepts everything at once, or follows a script."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable

from channels.base import Message, SendResult


class FakeAdapter:
    name = "fake"
    send_timeout = None  # never blocks: the dispatcher needs no watchdog around it

    def __init__(self, *, delivered: bool = True, script: Iterable[SendResult] = (), keep: bool = False
                 ) -> None:
        self.delivered = delivered
        self.script: deque[SendResult] = deque(script)  # results handed out first, in order
        self.keep = keep
        self.sent: list[Message] = []
        self.calls = 0
        self._ids = itertools.count(1)

    async def send(self, message: Message) -> SendResult:
        self.calls += 1
        if self.keep:
            self.sent.append(message)
        if self.script:
            return self.script.popleft()
        return SendResult.ok(f"fake-{next(self._ids)}", delivered=self.delivered)

    async def aclose(self) -> None:
        return None
