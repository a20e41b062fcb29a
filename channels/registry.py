"""Adapters registered by name; one serves each channel as CHANNEL_ADAPTERS says."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from channels.base import Adapter, ChannelConfigError
from channels.broadcast import BroadcastStub
from channels.console import ConsoleAdapter
from channels.email_smtp import SmtpAdapter, SmtpConfig
from channels.fake import FakeAdapter
from channels.twilio_common import TwilioAdapter, TwilioConfig

# A factory gets the configuration and the channels it will serve (so it can ask for exactly the
# credentials those channels need, e.g. a From number for voice but not for a messaging service).
Factory = Callable[[Mapping[str, Any], frozenset[str]], Adapter]
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
    """Instantiate one adapter per adapter name; an unknown name or a missing credential raises."""
    served: dict[str, set[str]] = {}
    for channel, name in assignment.items():
        if name not in _FACTORIES:
            raise ChannelConfigError(
                f"CHANNEL_ADAPTERS: {channel}={name}: unknown adapter (known: {', '.join(registered())})")
        served.setdefault(name, set()).add(channel)
    instances = {name: _FACTORIES[name](config, frozenset(chs)) for name, chs in served.items()}
    return ChannelRegistry({channel: instances[name] for channel, name in assignment.items()})


def require(config: Mapping[str, Any], adapter: str, channels: frozenset[str], *keys: str) -> None:
    """Raise naming the first missing setting (config keys are the settings' names in lower case)."""
    for key in keys:
        if not config.get(key):
            served = ", ".join(sorted(channels))
            raise ChannelConfigError(
                f"CHANNEL_ADAPTERS uses {adapter!r} for {served} but {key.upper()} is not set")


def _console(config: Mapping[str, Any], channels: frozenset[str]) -> Adapter:
    return ConsoleAdapter(echo=bool(config.get("console_echo", True)))


def _fake(config: Mapping[str, Any], channels: frozenset[str]) -> Adapter:
    return FakeAdapter()


def _twilio(config: Mapping[str, Any], channels: frozenset[str]) -> Adapter:
    unsupported = channels - {"sms", "voice"}
    if unsupported:
        raise ChannelConfigError(
            f"CHANNEL_ADAPTERS: 'twilio' serves sms and voice, not {', '.join(sorted(unsupported))}")
    require(config, "twilio", channels, "twilio_account_sid", "twilio_auth_token")
    if "voice" in channels:
        # Calls need a caller id; a messaging service only covers SMS.
        require(config, "twilio", frozenset({"voice"}), "twilio_from_number")
    has_sender = config.get("twilio_from_number") or config.get("twilio_messaging_service_sid")
    if "sms" in channels and not has_sender:
        raise ChannelConfigError("CHANNEL_ADAPTERS uses 'twilio' for sms but neither TWILIO_FROM_NUMBER nor "
                                 "TWILIO_MESSAGING_SERVICE_SID is set")
    return TwilioAdapter(TwilioConfig.from_mapping(config))


def _smtp(config: Mapping[str, Any], channels: frozenset[str]) -> Adapter:
    if channels - {"email"}:
        raise ChannelConfigError(
            f"CHANNEL_ADAPTERS: 'smtp' serves email, not {', '.join(sorted(channels - {'email'}))}")
    require(config, "smtp", channels, "smtp_host", "smtp_from")
    if config.get("smtp_username") and not config.get("smtp_password"):
        require(config, "smtp", channels, "smtp_password")
    return SmtpAdapter(SmtpConfig.from_mapping(config))


def _broadcast(config: Mapping[str, Any], channels: frozenset[str]) -> Adapter:
    return BroadcastStub(push_url=config.get("broadcast_push_url"),
                         timeout=float(config.get("broadcast_timeout", 10.0)))


register("console", _console)
register("fake", _fake)
register("twilio", _twilio)
register("smtp", _smtp)
register("stub", _broadcast)
register("broadcast", _broadcast)
