"""Structured logs: key-value lines (or JSON) bound with warning_id, notice_id, channel."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    # APScheduler reports every tick at INFO; the jobs log what they did themselves. The provider libraries
    # log each HTTP request at INFO (twilio: ~11 lines per SMS, a fifth of a worker's CPU in a profile); the
    # dispatcher writes one progress line per interval instead, and per-message detail at DEBUG.
    for name in ("apscheduler", "twilio", "twilio.http_client", "aiohttp", "aiohttp.access", "httpx", "httpcore",
                 "urllib3", "alibabacloud", "Tea"):
        logging.getLogger(name).setLevel(logging.WARNING)
    global _DEBUG
    _DEBUG = logging.getLevelName(level.upper()) <= logging.DEBUG
    renderer = structlog.processors.JSONRenderer(ensure_ascii=False) if json else structlog.dev.ConsoleRenderer(
        colors=False
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )


_DEBUG = False


def debug_enabled() -> bool:
    """Whether DEBUG lines are written: callers skip building per-message fields when not."""
    return _DEBUG


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
