"""Adapters registered by name; one serves each channel as CHANNEL_ADAPTERS says."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from channels.base import Adapter, ChannelConfigError
from channels.breaker import Breakers
from channels.broadcast import BroadcastStub
from channels.broadcast_http import (
    DEFAULT_PRIORITY,
    DEFAULT_REQUEST_TEMPLATE,
    HttpBroadcastAdapter,
    PlatformConfig,
    parse_levels,
)
from channels.by_channel import ByChannel
from channels.console import ConsoleAdapter
from channels.email_smtp import SmtpAdapter, SmtpConfig
from channels.failover import FailoverAdapter
from channels.fake import FakeAdapter
from channels.sms_aliyun import DEFAULT_VARIABLE_MAX, AliyunSmsAdapter, AliyunSmsConfig
from channels.sms_tencent import DEFAULT_VARIABLE_MAX as TENCENT_VARIABLE_MAX
from channels.sms_tencent import TencentSmsAdapter, TencentSmsConfig
from channels.templates import TemplateSet
from channels.twilio_common import TwilioAdapter, TwilioConfig
from channels.voice_aliyun import DEFAULT_VARIABLE_MAX as VOICE_VARIABLE_MAX
from channels.voice_aliyun import AliyunVoiceAdapter, AliyunVoiceConfig

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

    def __init__(self, adapters: Mapping[str, Adapter], *, owned: Sequence[Adapter] = (),
                 breakers: Breakers | None = None, chains: Mapping[str, Sequence[str]] | None = None) -> None:
        self._adapters = dict(adapters)
        self._chains = {c: list(p) for c, p in (chains or {}).items()}  # channel → provider names, as configured
        self._owned = list(owned)  # providers inside failover adapters, closed with the registry
        self.breakers = breakers  # the failover chains' breakers (None: no channel has a chain)

    def get(self, channel: str) -> Adapter:
        try:
            return self._adapters[channel]
        except KeyError:
            raise ChannelConfigError(f"no adapter configured for channel {channel!r}") from None

    def channels(self) -> list[str]:
        return sorted(self._adapters)

    def replace(self, channel: str, adapter: Adapter) -> None:
        self._adapters[channel] = adapter
        self._chains.pop(channel, None)

    def items(self) -> list[tuple[str, Adapter]]:
        return sorted(self._adapters.items())

    def providers(self) -> dict[str, list[str]]:
        """channel → its providers in failover order (one name for a channel without a chain)."""
        return {c: self._chains.get(c) or [a.name] for c, a in self.items()}

    def chained(self, channel: str) -> bool:
        return isinstance(self._adapters.get(channel), FailoverAdapter)

    async def aclose(self) -> None:
        seen: set[int] = set()
        for adapter in [*self._adapters.values(), *self._owned]:
            if id(adapter) not in seen:
                seen.add(id(adapter))
                await adapter.aclose()


def chain(name: str) -> list[str]:
    """'aliyun,tencent,twilio' → the providers in order (a single name is a chain of one)."""
    return [n.strip() for n in name.split(",") if n.strip()]


def build(assignment: Mapping[str, str], config: Mapping[str, Any], *, breakers: Breakers | None = None,
          wrap: Callable[[str, Adapter], Adapter] | None = None,
          on_skip: Callable[[str, str], None] | None = None) -> ChannelRegistry:
    """Instantiate one adapter per adapter name; an unknown name or a missing credential raises.

    A channel given several names in order gets a failover adapter over them (one breaker set shared by all).
    `wrap(name, adapter)` may put each provider behind a gate of the caller's (pacing, counting); `on_skip`
    hears of each message an open breaker passed on.
    """
    served: dict[str, set[str]] = {}
    for channel, names in assignment.items():
        providers = chain(names)
        if not providers:
            raise ChannelConfigError(f"CHANNEL_ADAPTERS: {channel}: no adapter named")
        if len(set(providers)) != len(providers):
            raise ChannelConfigError(f"CHANNEL_ADAPTERS: {channel}={names}: a provider is listed twice")
        for name in providers:
            if name not in _FACTORIES:
                raise ChannelConfigError(
                    f"CHANNEL_ADAPTERS: {channel}={name}: unknown adapter (known: {', '.join(registered())})")
            served.setdefault(name, set()).add(channel)
    instances = {name: _FACTORIES[name](config, frozenset(chs)) for name, chs in served.items()}
    if wrap is not None:
        instances = {name: wrap(name, adapter) for name, adapter in instances.items()}
    shared = breakers or Breakers()
    adapters: dict[str, Adapter] = {}
    for channel, names in assignment.items():
        providers = chain(names)
        adapters[channel] = (instances[providers[0]] if len(providers) == 1 else
                             FailoverAdapter([(n, instances[n]) for n in providers], breakers=shared,
                                             on_skip=on_skip))
    return ChannelRegistry(adapters, owned=list(instances.values()), breakers=shared,
                           chains={c: chain(n) for c, n in assignment.items()})


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


def _broadcast_http(config: Mapping[str, Any], channels: frozenset[str]) -> Adapter:
    if channels - {"broadcast"}:
        raise ChannelConfigError(
            f"CHANNEL_ADAPTERS: 'http' serves broadcast, not {', '.join(sorted(channels - {'broadcast'}))}")
    require(config, "http", channels, "broadcast_platform_url", "broadcast_secret")
    priority = parse_levels(config.get("broadcast_priority_by_level") or "", setting="BROADCAST_PRIORITY_BY_LEVEL")
    return HttpBroadcastAdapter(PlatformConfig(
        url=config["broadcast_platform_url"], secret=config["broadcast_secret"],
        request_template=config.get("broadcast_request_template") or DEFAULT_REQUEST_TEMPLATE,
        repeat_by_level=parse_levels(config.get("broadcast_repeat_by_level") or "",
                                     setting="BROADCAST_REPEAT_BY_LEVEL"),
        priority_by_level={**DEFAULT_PRIORITY, **priority},
        callback_url=config.get("broadcast_callback_url") or "",
        timeout=float(config.get("broadcast_timeout") or 10.0)))


def _aliyun(config: Mapping[str, Any], channels: frozenset[str]) -> Adapter:
    """Aliyun serves sms (短信服务) and voice (语音服务): two APIs, one provider name in CHANNEL_ADAPTERS."""
    if channels - {"sms", "voice"}:
        raise ChannelConfigError(
            f"CHANNEL_ADAPTERS: 'aliyun' serves sms and voice, not {', '.join(sorted(channels - {'sms', 'voice'}))}")
    require(config, "aliyun", channels, "aliyun_access_key_id", "aliyun_access_key_secret")
    adapters: dict[str, Adapter] = {}
    if "sms" in channels:
        adapters["sms"] = _aliyun_sms(config)
    if "voice" in channels:
        adapters["voice"] = _aliyun_voice(config)
    if len(adapters) == 1:
        return next(iter(adapters.values()))
    return ByChannel("aliyun", adapters)


def _aliyun_sms(config: Mapping[str, Any]) -> Adapter:
    require(config, "aliyun", frozenset({"sms"}), "aliyun_sms_sign_name", "aliyun_sms_templates")
    templates = templates_for(config, "aliyun_sms_templates", default_max=DEFAULT_VARIABLE_MAX)
    return AliyunSmsAdapter(AliyunSmsConfig(
        access_key_id=config["aliyun_access_key_id"], access_key_secret=config["aliyun_access_key_secret"],
        sign_name=config["aliyun_sms_sign_name"], templates=templates,
        endpoint=config.get("aliyun_sms_endpoint") or "dysmsapi.aliyuncs.com",
        timeout=float(config.get("aliyun_timeout") or 10.0),
        batch_size=int(config.get("aliyun_sms_batch_size") or 100),
        batch_wait=float(config.get("aliyun_sms_batch_wait") or 0.05),
        max_connections=int(config.get("channel_concurrency") or 100)))


def _aliyun_voice(config: Mapping[str, Any]) -> Adapter:
    voice = frozenset({"voice"})
    # A warning call asks for key 1, so the confirmation template is required with the rest.
    require(config, "aliyun", voice, "aliyun_voice_called_show_number", "aliyun_voice_tts_templates",
            "aliyun_voice_confirm_tts_code")
    templates = TemplateSet.parse(config["aliyun_voice_tts_templates"], setting="ALIYUN_VOICE_TTS_TEMPLATES",
                                  default_max=VOICE_VARIABLE_MAX)
    return AliyunVoiceAdapter(AliyunVoiceConfig(
        access_key_id=config["aliyun_access_key_id"], access_key_secret=config["aliyun_access_key_secret"],
        called_show_number=config["aliyun_voice_called_show_number"], templates=templates,
        confirm_code=config["aliyun_voice_confirm_tts_code"],
        bye_code=config.get("aliyun_voice_bye_tts_code") or None,
        endpoint=config.get("aliyun_voice_endpoint") or "dyvmsapi.aliyuncs.com",
        play_times=int(config.get("aliyun_voice_play_times") or 2),
        key_timeout_ms=int(config.get("aliyun_voice_key_timeout_ms") or 8000),
        timeout=float(config.get("aliyun_timeout") or 10.0),
        max_connections=int(config.get("channel_concurrency") or 100)))


def _tencent(config: Mapping[str, Any], channels: frozenset[str]) -> Adapter:
    if channels - {"sms"}:
        raise ChannelConfigError(
            f"CHANNEL_ADAPTERS: 'tencent' serves sms, not {', '.join(sorted(channels - {'sms'}))}")
    require(config, "tencent", channels, "tencent_secret_id", "tencent_secret_key", "tencent_sms_sdk_app_id",
            "tencent_sms_sign_name", "tencent_sms_templates")
    templates = templates_for(config, "tencent_sms_templates",
                              default_max=int(config.get("tencent_sms_variable_max") or TENCENT_VARIABLE_MAX))
    return TencentSmsAdapter(TencentSmsConfig(
        secret_id=config["tencent_secret_id"], secret_key=config["tencent_secret_key"],
        sdk_app_id=config["tencent_sms_sdk_app_id"], sign_name=config["tencent_sms_sign_name"], templates=templates,
        endpoint=config.get("tencent_sms_endpoint") or "sms.tencentcloudapi.com",
        region=config.get("tencent_region") or "ap-guangzhou",
        timeout=float(config.get("tencent_timeout") or 10.0),
        batch_wait=float(config.get("tencent_sms_batch_wait") or 0.05),
        max_connections=int(config.get("channel_concurrency") or 100)))


def templates_for(config: Mapping[str, Any], key: str, *, default_max: int) -> TemplateSet:
    """The template setting parsed; a link token capped shorter than tokens are would fail every message, so
    that stops start-up instead (`token_length` comes from the service, which makes the tokens)."""
    setting = key.upper()
    templates = TemplateSet.parse(config[key], setting=setting, default_max=default_max)
    length = int(config.get("token_length") or 0)
    short = templates.capped_below("token", length) if length else []
    if short:
        raise ChannelConfigError(
            f"{setting}: {', '.join(short)}: the token variable allows fewer than the {length} characters of a "
            f"link token; register a longer variable and write token/{length}")
    return templates


register("console", _console)
register("fake", _fake)
register("twilio", _twilio)
register("smtp", _smtp)
register("stub", _broadcast)
register("broadcast", _broadcast)
register("aliyun", _aliyun)
register("tencent", _tencent)
register("http", _broadcast_http)
