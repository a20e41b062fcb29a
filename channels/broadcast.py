"""Village loudspeakers / 应急广播: a stub that records what each village would hear, and can push it on.

The address is the village code. With a push URL configured, each message is POSTed as JSON to the
broadcast platform (the integration point for a real 应急广播 terminal system); without one, the stub
only records, which is what development and drills need.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from channels.base import Message, SendResult


@dataclass(frozen=True)
class Played:
    village: str
    text: str
    idempotency_key: str
    at: datetime


class BroadcastStub:
    name = "broadcast"

    def __init__(self, *, push_url: str | None = None, timeout: float = 10.0, keep: int = 10_000) -> None:
        self.push_url = push_url
        self.timeout = timeout
        self.keep = keep
        self.played: dict[str, list[Played]] = defaultdict(list)
        self._http: httpx.AsyncClient | None = None

    async def send(self, message: Message) -> SendResult:
        village = message.address
        record = Played(village, message.body, message.idempotency_key, datetime.now(UTC))
        if self.push_url:
            result = await self._push(message)
            if result.status == "failed":
                return result
        else:
            result = SendResult.ok(f"broadcast-{village}-{message.idempotency_key}"[:64])
        plays = self.played[village]
        if len(plays) >= self.keep:
            del plays[: self.keep // 2]
        plays.append(record)
        return result

    async def _push(self, message: Message) -> SendResult:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.timeout)
        payload = {"village": message.address, "text": message.body,
                   "idempotency_key": message.idempotency_key, "metadata": message.metadata}
        try:
            r = await self._http.post(self.push_url or "", json=payload,
                                      headers={"Idempotency-Key": message.idempotency_key})
        except (TimeoutError, httpx.TimeoutException):
            return SendResult.transient("timeout", "broadcast platform did not answer in time")
        except httpx.HTTPError as exc:
            return SendResult.transient("network", f"{type(exc).__name__}: {exc}"[:500])
        if r.status_code == 429 or r.status_code >= 500:
            return SendResult.transient(f"http_{r.status_code}", r.text[:500])
        if r.status_code >= 400:
            return SendResult.permanent(f"http_{r.status_code}", r.text[:500])
        try:
            provider_id = str(r.json().get("id") or "")
        except ValueError:
            provider_id = ""
        return SendResult.ok((provider_id or f"broadcast-{message.address}")[:64])

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
