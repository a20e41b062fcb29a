"""Builds the channel registry from settings (the only place settings meet channels/)."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from channels import registry
from channels.base import Adapter, ChannelConfigError
from channels.breaker import BreakerPolicy, Breakers
from warning_service.config import Settings
from warning_service.delivery.providers import ProviderGate, ProviderStats
from warning_service.delivery.ratelimit import RateLimiter
from warning_service.notice.tokens import make_token

# Every link token has this length (a fixed-size id and MAC): templates must let it through whole.
TOKEN_LENGTH = len(make_token(1, key=bytes(32)))

CHANNELS = ("sms", "voice", "email", "broadcast")


def channel_config(settings: Settings) -> dict[str, object]:
    return {
        "console_echo": settings.environment == "development",
        "public_base_url": settings.public_base_url,
        "channel_concurrency": settings.channel_concurrency,
        "twilio_account_sid": settings.twilio_account_sid,
        "twilio_auth_token": _secret(settings.twilio_auth_token),
        "twilio_from_number": settings.twilio_from_number,
        "twilio_messaging_service_sid": settings.twilio_messaging_service_sid,
        "twilio_api_base_url": settings.twilio_api_base_url,
        "twilio_timeout": settings.twilio_timeout_seconds,
        "smtp_host": settings.smtp_host,
        "smtp_port": settings.smtp_port,
        "smtp_username": settings.smtp_username,
        "smtp_password": _secret(settings.smtp_password),
        "smtp_from": settings.smtp_from,
        "smtp_tls": settings.smtp_tls,
        "smtp_timeout": settings.smtp_timeout_seconds,
        "broadcast_push_url": settings.broadcast_push_url,
        "broadcast_platform_url": settings.broadcast_platform_url,
        "broadcast_secret": _secret(settings.broadcast_secret),
        "broadcast_request_template": settings.broadcast_request_template,
        "broadcast_repeat_by_level": settings.broadcast_repeat_by_level,
        "broadcast_priority_by_level": settings.broadcast_priority_by_level,
        "broadcast_callback_url": f"{settings.public_base_url}/webhooks/broadcast/receipts",
        "broadcast_timeout": settings.broadcast_timeout_seconds,
        "aliyun_access_key_id": settings.aliyun_access_key_id,
        "aliyun_access_key_secret": _secret(settings.aliyun_access_key_secret),
        "aliyun_sms_sign_name": settings.aliyun_sms_sign_name,
        "aliyun_sms_templates": settings.aliyun_sms_templates,
        "aliyun_sms_endpoint": settings.aliyun_sms_endpoint,
        "aliyun_sms_batch_size": settings.aliyun_sms_batch_size,
        "aliyun_sms_batch_wait": settings.aliyun_sms_batch_wait_ms / 1000,
        "aliyun_timeout": settings.aliyun_timeout_seconds,
        "aliyun_voice_called_show_number": settings.aliyun_voice_called_show_number,
        "aliyun_voice_tts_templates": settings.aliyun_voice_tts_templates,
        "aliyun_voice_confirm_tts_code": settings.aliyun_voice_confirm_tts_code,
        "aliyun_voice_bye_tts_code": settings.aliyun_voice_bye_tts_code,
        "aliyun_voice_endpoint": settings.aliyun_voice_endpoint,
        "aliyun_voice_play_times": settings.aliyun_voice_play_times,
        "aliyun_voice_key_timeout_ms": settings.aliyun_voice_key_timeout_ms,
        "tencent_secret_id": settings.tencent_secret_id,
        "tencent_secret_key": _secret(settings.tencent_secret_key),
        "tencent_sms_sdk_app_id": settings.tencent_sms_sdk_app_id,
        "tencent_sms_sign_name": settings.tencent_sms_sign_name,
        "tencent_sms_templates": settings.tencent_sms_templates,
        "tencent_sms_endpoint": settings.tencent_sms_endpoint,
        "tencent_region": settings.tencent_region,
        "tencent_timeout": settings.tencent_timeout_seconds,
        "tencent_sms_variable_max": settings.tencent_sms_variable_max,
        "tencent_sms_batch_wait": settings.tencent_sms_batch_wait_ms / 1000,
        "token_length": TOKEN_LENGTH,
    }


def breaker_policy(settings: Settings) -> BreakerPolicy:
    return BreakerPolicy(failure_ratio=settings.breaker_failure_ratio, min_calls=settings.breaker_min_calls,
                         window_seconds=settings.breaker_window_seconds,
                         cooldown_seconds=settings.breaker_cooldown_seconds)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value else None


def build_channels(settings: Settings, *, redis: Any | None = None, stats: ProviderStats | None = None
                   ) -> registry.ChannelRegistry:
    """One adapter per channel as CHANNEL_ADAPTERS says; a missing credential stops start-up, naming it.

    Every provider sits behind a `ProviderGate` (its PROVIDER_RATE_LIMITS bucket, its figures in `stats`).
    Failover chains share breakers, and the buckets and figures are shared, through `redis` when given
    (every worker sees a provider's outage and draws from the same bucket)."""
    stats = stats if stats is not None else ProviderStats(redis)
    limiter = RateLimiter(redis)
    limits = settings.provider_limits()

    def gate(name: str, adapter: Adapter) -> Adapter:
        return ProviderGate(adapter, provider=name, stats=stats, limiter=limiter, rate=limits.get(name))

    try:
        assignment = {c: "console" for c in CHANNELS}
        assignment.update(settings.adapter_for())
        unknown = sorted(set(limits) - {n for v in assignment.values() for n in registry.chain(v)})
        if unknown:
            raise ChannelConfigError(f"PROVIDER_RATE_LIMITS names {', '.join(unknown)}, which no channel uses "
                                     f"(CHANNEL_ADAPTERS={settings.channel_adapters})")
        return registry.build(assignment, channel_config(settings),
                              breakers=Breakers(breaker_policy(settings), redis=redis), wrap=gate,
                              on_skip=stats.skipped)
    except (ChannelConfigError, ValueError) as exc:
        raise SystemExit(f"configuration error: {exc}") from None


def adapter_names(settings: Settings) -> dict[str, str]:
    """channel → adapter name, defaults included (what the dispatcher and the ETA use for rate limits)."""
    assignment = {c: "console" for c in CHANNELS}
    assignment.update(settings.adapter_for())
    return assignment
