"""Builds the channel registry from settings (the only place settings meet channels/)."""

from __future__ import annotations

from pydantic import SecretStr

from channels import registry
from channels.base import ChannelConfigError
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
        "smtp_host": settings.smtp_host,
        "smtp_port": settings.smtp_port,
        "smtp_username": settings.smtp_username,
        "smtp_password": _secret(settings.smtp_password),
        "smtp_from": settings.smtp_from,
        "smtp_tls": settings.smtp_tls,
        "smtp_timeout": settings.smtp_timeout_seconds,
        "broadcast_push_url": settings.broadcast_push_url,
    }


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value else None


def build_channels(settings: Settings) -> registry.ChannelRegistry:
    """One adapter per channel as CHANNEL_ADAPTERS says; a missing credential stops start-up, naming it."""
    try:
        assignment = {c: "console" for c in CHANNELS}
        assignment.update(settings.adapter_for())
        return registry.build(assignment, channel_config(settings))
    except (ChannelConfigError, ValueError) as exc:
        raise SystemExit(f"configuration error: {exc}") from None


def adapter_names(settings: Settings) -> dict[str, str]:
    """channel → adapter name, defaults included (what the dispatcher and the ETA use for rate limits)."""
    assignment = {c: "console" for c in CHANNELS}
    assignment.update(settings.adapter_for())
    return assignment
