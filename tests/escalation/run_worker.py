"""`warning-service worker` for the shutdown test: the real Worker on the test database until SIGTERM.

Usage: python -m tests.escalation.run_worker DATABASE_URL
"""

from __future__ import annotations

import sys

from warning_service import loop
from warning_service.config import Settings
from warning_service.logging import configure_logging
from warning_service.runtime import build_runtime
from warning_service.worker import Worker


async def main(url: str) -> None:
    settings = Settings(_env_file=None, environment="test",  # type: ignore[call-arg]
                        secret_key="test-secret-key-0123456789", database_url=url, redis_url=None,
                        run_worker_in_process=False, escalation_tick_seconds=0.2)
    configure_logging("INFO")
    rt = await build_runtime(settings)
    try:
        await Worker(rt).run_until_signalled()
    finally:
        await rt.close()


if __name__ == "__main__":
    loop.run(main(sys.argv[1]))  # the loop production's worker runs on
