"""An adapter composed of adapters: per channel an ordered list of providers (`sms=aliyun,tencent,twilio`).

A message goes to the first provider whose breaker is closed. It moves on to the next provider only when
the result says the provider certainly did not take it (`SendResult.not_sent`: connection refused, an
HTTP error or throttling/quota answer, a template it cannot express). A timeout or a dropped connection after
the request left is returned as it is: that provider may have sent it, and a second provider would double
it; the dispatcher retries later, against the same order.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence

from channels.base import Adapter, Message, SendResult, max_batch, send_many
from channels.breaker import Breakers

SKIPPED = "breaker_open"


class FailoverAdapter:
    name = "failover"  # the attempts table keeps 16 characters; the provider that answered is in the result

    def __init__(self, providers: Sequence[tuple[str, Adapter]], *, breakers: Breakers,
                 on_skip: Callable[[str, str], None] | None = None) -> None:
        if not providers:
            raise ValueError("a failover adapter needs at least one provider")
        self.providers = list(providers)
        self.breakers = breakers
        self.on_skip = on_skip  # (channel, provider) for each message a provider's open breaker passed on
        timeouts = [getattr(a, "send_timeout", 30.0) for _, a in self.providers]
        # Each provider may take its full time before the next one is tried.
        self.send_timeout = None if all(t is None for t in timeouts) else sum(t or 0.0 for t in timeouts) + 1.0
        # provider → outcome → count, for /metrics (this process).
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        # A chain takes batches when one of its providers does; the others get them one message at a time.
        self.max_batch = max(max_batch(a) for _, a in self.providers)

    @property
    def provider_names(self) -> list[str]:
        return [n for n, _ in self.providers]

    async def send(self, message: Message) -> SendResult:
        last: SendResult | None = None
        skipped: list[str] = []
        for name, adapter in self.providers:
            if not await self.breakers.allow(name):
                skipped.append(name)
                self.counts[name][SKIPPED] += 1
                if self.on_skip is not None:
                    self.on_skip(message.channel, name)
                continue
            result = await adapter.send(message)
            outcome = "failed" if result.status == "failed" else "accepted"
            self.counts[name][outcome + ("_refused" if result.not_sent else "")] += 1
            # A recipient's own problem (bad number) or a missing template says nothing about the provider's
            # health; errors worth retrying (5xx, throttling, timeouts) do.
            provider_fault = result.status == "failed" and result.retryable
            await self.breakers.record(name, ok=not provider_fault)
            result = dataclasses.replace(result, provider=name)
            if result.status != "failed" or not result.not_sent:
                return result
            last = result
        if last is not None:
            return last
        # Every breaker open: nothing was sent anywhere, retry after the cool-down.
        return SendResult.unavailable(SKIPPED, f"all providers' breakers are open: {', '.join(skipped)}")

    async def send_many(self, messages: list[Message]) -> list[SendResult]:
        """`send` for many at once: each provider gets, in one batch, what the providers before it certainly
        did not take; the same rule per message as `send`."""
        out: list[SendResult | None] = [None] * len(messages)
        todo = list(range(len(messages)))
        skipped: list[str] = []
        for name, adapter in self.providers:
            if not todo:
                break
            if not await self.breakers.allow(name):
                skipped.append(name)
                self.counts[name][SKIPPED] += len(todo)
                if self.on_skip is not None:
                    for i in todo:
                        self.on_skip(messages[i].channel, name)
                continue
            results = await send_many(adapter, [messages[i] for i in todo])
            faults = 0
            passed: list[int] = []
            for i, result in zip(todo, results, strict=True):
                outcome = "failed" if result.status == "failed" else "accepted"
                self.counts[name][outcome + ("_refused" if result.not_sent else "")] += 1
                faults += result.status == "failed" and result.retryable
                out[i] = dataclasses.replace(result, provider=name)
                if result.status == "failed" and result.not_sent:
                    passed.append(i)
            await self.breakers.record(name, ok=True, count=len(results) - faults)
            await self.breakers.record(name, ok=False, count=faults)
            todo = passed
        for i in todo:
            if out[i] is None:  # every breaker open: nothing was sent anywhere, retry after the cool-down
                out[i] = SendResult.unavailable(SKIPPED, f"all providers' breakers are open: {', '.join(skipped)}")
        return out  # type: ignore[return-value]

    async def aclose(self) -> None:
        return None  # the providers are closed by the registry, which may share them between channels
