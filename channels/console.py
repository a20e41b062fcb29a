"""The development default: prints each message and keeps it in memory (it counts as delivered)."""

from __future__ import annotations

import sys
import uuid

from channels.base import Message, SendResult


class ConsoleAdapter:
    name = "console"
    send_timeout = None  # never blocks: the dispatcher needs no watchdog around it

    def __init__(self, *, echo: bool = True, keep: int = 10_000) -> None:
        self.echo = echo
        self.keep = keep
        self.sent: list[Message] = []

    async def send(self, message: Message) -> SendResult:
        if len(self.sent) >= self.keep:
            del self.sent[: self.keep // 2]
        self.sent.append(message)
        if self.echo:
            subject = f" [{message.subject}]" if message.subject else ""
            print(f"--- {message.channel} → {message.address}{subject}\n{message.body}\n", file=sys.stderr)
        return SendResult.ok(f"console-{uuid.uuid4().hex[:16]}", delivered=True)

    async def aclose(self) -> None:
        return None
