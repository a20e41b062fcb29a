"""应急广播 through a county's HTTP broadcast platform: one signed request per village.

County platforms differ in the JSON they accept, so the body is a small Jinja template (a setting) rendered
with the message's text, zone, terminals, repeat count, priority and play time; whatever it renders must be a
JSON object, which is checked at start-up with sample values. Every request is signed with the shared secret
(channels/broadcast_signing.py); the platform answers at once and reports each terminal's play later, signed
the same way, to the receipt webhook. The task id is the message's idempotency key, stable across retries, so
a platform that keeps task ids plays a retried message once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from channels.base import BroadcastFields, ChannelConfigError, Message, SendResult
from channels.broadcast_signing import signed_headers

BEIJING = ZoneInfo("Asia/Shanghai")
# GB/T 35965-style event levels: 1 特别重大 (red) … 4 一般 (blue); platforms put level 1 on air first.
DEFAULT_PRIORITY = {"red": 1, "orange": 2, "yellow": 3, "blue": 4}
DEFAULT_REQUEST_TEMPLATE = (
    '{"taskId": {{ task_id | tojson }}, "zoneCode": {{ zone | tojson }}, "zoneName": {{ zone_name | tojson }}, '
    '"terminalIds": {{ terminals | tojson }}, "content": {{ text | tojson }}, "repeat": {{ repeat }}, '
    '"priority": {{ priority }}, "playTime": {{ play_at | tojson }}, "callbackUrl": {{ callback_url | tojson }}}'
)
SAMPLE = BroadcastFields(zone="331081001001", zone_name="横湖村", town="331081001", terminals=("T-1", "T-2"),
                         level="red", repeat=3, kind="alert")


@dataclass(frozen=True)
class PlatformConfig:
    url: str
    secret: str
    request_template: str = DEFAULT_REQUEST_TEMPLATE
    # Level → plays; a level not listed plays what the warning's policy says (broadcast_repeat).
    repeat_by_level: Mapping[str, int] = field(default_factory=dict)
    priority_by_level: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PRIORITY))
    callback_url: str = ""
    timeout: float = 10.0
    default_repeat: int = 3


class RequestTemplate:
    """The platform's request body, compiled once; `render` gives the bytes to send (and sign)."""

    def __init__(self, source: str, *, setting: str = "BROADCAST_REQUEST_TEMPLATE") -> None:
        env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        env.policies["json.dumps_kwargs"] = {"ensure_ascii": False}
        try:
            self._template = env.from_string(source)
            self.render(_values(Message(channel="broadcast", address=SAMPLE.zone, body="样例:各位村民请注意。",
                                        idempotency_key="sample", broadcast=SAMPLE),
                                SAMPLE, repeat=3, priority=1, callback_url="https://example.invalid/cb", now=0.0))
        except (TemplateError, ValueError) as exc:
            raise ChannelConfigError(f"{setting}: {type(exc).__name__}: {exc}") from None

    def render(self, values: Mapping[str, object]) -> bytes:
        text = self._template.render(**values)
        parsed = json.loads(text)  # ValueError when the template does not make JSON
        if not isinstance(parsed, dict):
            raise ValueError("the request body must be a JSON object")
        return text.encode()


def _values(message: Message, f: BroadcastFields, *, repeat: int, priority: int, callback_url: str,
            now: float) -> dict[str, object]:
    at = datetime.fromtimestamp(now, UTC).astimezone(BEIJING)
    return {"task_id": message.idempotency_key, "text": message.body, "zone": f.zone, "zone_name": f.zone_name,
            "town": f.town, "terminals": list(f.terminals), "terminal_count": len(f.terminals), "repeat": repeat,
            "priority": priority, "level": f.level, "kind": f.kind or message.metadata.get("kind", ""),
            "play_at": at.isoformat(timespec="seconds"), "play_at_epoch": int(now), "callback_url": callback_url}


class HttpBroadcastAdapter:
    name = "broadcast_http"

    def __init__(self, config: PlatformConfig, *, clock: Callable[[], float] = time.time,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.template = RequestTemplate(config.request_template)
        self.clock = clock
        # The dispatcher's watchdog: a little longer than our own timeout, which answers first.
        self.send_timeout = config.timeout + 5.0
        self._http = httpx.AsyncClient(timeout=config.timeout, transport=transport)

    def repeat_for(self, f: BroadcastFields, message: Message) -> int:
        if f.level in self.config.repeat_by_level:
            return self.config.repeat_by_level[f.level]
        return f.repeat or message.broadcast_repeat or self.config.default_repeat

    async def send(self, message: Message) -> SendResult:
        f = message.broadcast or BroadcastFields(zone=message.address)
        now = self.clock()
        values = _values(message, f, repeat=self.repeat_for(f, message),
                         priority=self.config.priority_by_level.get(f.level, DEFAULT_PRIORITY.get(f.level, 4)),
                         callback_url=self.config.callback_url, now=now)
        try:
            body = self.template.render(values)
        except (TemplateError, ValueError) as exc:
            return SendResult.permanent("request_template", f"{type(exc).__name__}: {exc}"[:500])
        headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": message.idempotency_key,
                   **signed_headers(self.config.secret, body, now=now)}
        try:
            r = await self._http.post(self.config.url, content=body, headers=headers)
        except httpx.ConnectError as exc:
            # Nothing reached the platform: safe to send again, or elsewhere.
            return SendResult.unavailable("connect", f"{type(exc).__name__}: {exc}"[:500])
        except httpx.TimeoutException:
            # The request may have been taken: retried later with the same task id, never elsewhere.
            return SendResult.transient("timeout", "broadcast platform did not answer in time")
        except httpx.HTTPError as exc:
            return SendResult.transient("network", f"{type(exc).__name__}: {exc}"[:500])
        if r.status_code == 429 or r.status_code >= 500:
            return SendResult.unavailable(f"http_{r.status_code}", r.text[:500])
        if r.status_code in (401, 403):
            return SendResult.permanent("auth_refused", "the platform refused our signature (BROADCAST_SECRET?)")
        if r.status_code >= 400:
            return SendResult.permanent(f"http_{r.status_code}", r.text[:500])
        return SendResult.ok(message.idempotency_key[:64])

    async def aclose(self) -> None:
        await self._http.aclose()


def parse_levels(raw: str, *, setting: str) -> dict[str, int]:
    """'red=5,orange=3' → {level: n}; n from 1 to 20."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        level, sep, n = part.partition("=")
        if not sep or level.strip() not in DEFAULT_PRIORITY or not n.strip().isdigit() or not 1 <= int(n) <= 20:
            raise ChannelConfigError(f"{setting}: {part!r} is not level=number (levels {', '.join(DEFAULT_PRIORITY)},"
                                     " numbers 1–20)")
        out[level.strip()] = int(n)
    return out
