"""Builds the channel registry from settings (the only place settings meet channels/)."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from channels import registry
from channels.base import ChannelConfigError
from channels.breaker import BreakerPolicy, Breakers
from warning_service.config import Settings

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
        "aliyun_access_key_id": settings.aliyun_access_key_id,
        "aliyun_access_key_secret": _secret(settings.aliyun_access_key_secret),
        "aliyun_sms_sign_name": settings.aliyun_sms_sign_name,
        "aliyun_sms_templates": settings.aliyun_sms_templates,
        "aliyun_sms_endpoint": settings.aliyun_sms_endpoint,
        "aliyun_sms_batch_size": settings.aliyun_sms_batch_size,
        "aliyun_sms_batch_wait": settings.aliyun_sms_batch_wait_ms / 1000,
        "aliyun_timeout": settings.aliyun_timeout_seconds,
        "tencent_secret_id": settings.tencent_secret_id,
        "tencent_secret_key": _secret(settings.tencent_secret_key),
        "tencent_sms_sdk_app_id": settings.tencent_sms_sdk_app_id,
        "tencent_sms_sign_name": settings.tencent_sms_sign_name,
        "tencent_sms_templates": settings.tencent_sms_templates,
        "tencent_sms_endpoint": settings.tencent_sms_endpoint,
        "tencent_region": settings.tencent_region,
        "tencent_timeout": settings.tencent_timeout_seconds,
    }


def breaker_policy(settings: Settings) -> BreakerPolicy:
    return BreakerPolicy(failure_ratio=settings.breaker_failure_ratio, min_calls=settings.breaker_min_calls,
                         window_seconds=settings.breaker_window_seconds,
                         cooldown_seconds=settings.breaker_cooldown_seconds)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value else None


def build_channels(settings: Settings, *, redis: Any | None = None) -> registry.ChannelRegistry:
    """One adapter per channel as CHANNEL_ADAPTERS says; a missing credential stops start-up, naming it.

    Failover chains share breakers through `redis` when given (every worker sees a provider's outage)."""
    try:
        assignment = {c: "console" for c in CHANNELS}
        assignment.update(settings.adapter_for())
        return registry.build(assignment, channel_config(settings),
                              breakers=Breakers(breaker_policy(settings), redis=redis))
    except (ChannelConfigError, ValueError) as exc:
        raise SystemExit(f"configuration error: {exc}") from None


def adapter_names(settings: Settings) -> dict[str, str]:
    """channel → adapter name, defaults included (what the dispatcher and the ETA use for rate limits)."""
    assignment = {c: "console" for c in CHANNELS}
    assignment.update(settings.adapter_for())
    return assignment
