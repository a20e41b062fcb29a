"""A real worker process for the engine's fault tests: the Worker (streaming dispatcher, heartbeat, escalation
and ledger jobs) with the real Twilio adapter pointed at a local Twilio-speaking server, until SIGTERM.

Usage: python -m tests.delivery.run_dispatcher DATABASE_URL TWILIO_BASE_URL CONCURRENCY [--redis-url URL]
       [--set SETTING=VALUE ...]   (e.g. --set dispatch_worker_gone_seconds=2.5: the tests' shorter timings)
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from channels.base import Message
from tests.delivery.fake_twilio import ACCOUNT_SID, AUTH_TOKEN
from warning_service import loop
from warning_service.config import Settings
from warning_service.logging import configure_logging
from warning_service.runtime import build_runtime
from warning_service.worker import Worker

BODY = "【温岭市防汛防台抗旱指挥部】台风红色预警:请立即到岗,回复1确认。"


async def plain_render(session: Any, *, rows: Sequence[Any], settings: Settings, **_: Any) -> Mapping[int, Message]:
    """The fault tests' rows carry no notices: one fixed text (the dispatcher adds the callback URL)."""
    return {r.id: Message(channel=r.channel, address=r.address, body=BODY, idempotency_key=r.idempotency_key,
                          metadata={"outbox_id": str(r.id)}) for r in rows}


async def main(url: str, twilio_url: str, concurrency: int, redis_url: str | None, overrides: dict[str, str]
               ) -> None:
    values: dict[str, Any] = {
        "environment": "test", "secret_key": "test-secret-key-0123456789", "database_url": url,
        "redis_url": redis_url, "run_worker_in_process": False, "channel_adapters": "sms=twilio",
        "twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN, "twilio_from_number": "+15005550006",
        "twilio_api_base_url": twilio_url, "public_base_url": "http://testserver", "channel_concurrency": concurrency,
        "channel_rate_limits": "sms=100000", "retry_base_seconds": 0.5, "retry_max_seconds": 2.0,
        "dispatch_interval_seconds": 0.2, "escalation_tick_seconds": 5.0}
    settings = Settings(_env_file=None, **{**values, **overrides})  # type: ignore[call-arg]
    configure_logging("INFO")
    rt = await build_runtime(settings)
    rt.render_outbox = plain_render
    try:
        await Worker(rt).run_until_signalled()
    finally:
        await rt.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("twilio_url")
    ap.add_argument("concurrency", type=int)
    ap.add_argument("--redis-url")
    ap.add_argument("--set", action="append", default=[], metavar="SETTING=VALUE")
    a = ap.parse_args()
    loop.run(main(a.url, a.twilio_url, a.concurrency, a.redis_url, dict(kv.split("=", 1) for kv in a.set)))
