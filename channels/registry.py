"""Adapters registered by name; one serves each channel as CHANNEL_ADAPTERS says."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from channels.base import Adapter, ChannelConfigError

Factory = Callable[[Mapping[str, Any]], Adapter]
_FACTORIES: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    _FACTORIES[name] = factory


def registered() -> list[str]:
    return sorted(_FACTORIES)


class ChannelRegistry:
    """channel name ("sms", "voice", "email", "broadcast") → the adapter serving it."""

    def __init__(self, adapters: Mapping[str, Adapter]) -> None:
        self._adapters = dict(adapters)

    def get(self, channel: str) -> Adapter:
        try:
            return self._adapters[channel]
        except KeyError:
            raise ChannelConfigError(f"no adapter configured for channel {channel!r}") from None

    def channels(self) -> list[str]:
        return sorted(self._adapters)

    def replace(self, channel: str, adapter: Adapter) -> None:
        self._adapters[channel] = adapter

    async def aclose(self) -> None:
        seen: set[int] = set()
        for adapter in self._adapters.values():
            if id(adapter) not in seen:
                seen.add(id(adapter))
                await adapter.aclose()


def build(assignment: Mapping[str, str], config: Mapping[str, Any]) -> ChannelRegistry:
    """Instantiate one adapter per channel; an unknown adapter name or missing credential raises."""
    cache: dict[str, Adapter] = {}
    adapters: dict[str, Adapter] = {}
    for channel, name in assignment.items():
        if name not in _FACTORIES:
            raise ChannelConfigError(
                f"CHANNEL_ADAPTERS: {channel}={name}: unknown adapter (known: {', '.join(registered())})")
        if name not in cache:
            cache[name] = _FACTORIES[name](config)
        adapters[channel] = cache[name]
    return ChannelRegistry(adapters)


def _console(config: Mapping[str, Any]) -> Adapter:
    from channels.console import ConsoleAdapter

    return ConsoleAdapter(echo=bool(config.get("console_echo", True)))


register("console", _console)
