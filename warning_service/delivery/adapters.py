"""Builds the channel registry from settings (the only place settings meet channels/)."""

from __future__ import annotations

from channels import registry
from channels.base import ChannelConfigError
from warning_service.config import Settings

CHANNELS = ("sms", "voice", "email", "broadcast")


def channel_config(settings: Settings) -> dict[str, object]:
    return {
        "console_echo": settings.environment == "development",
        "twilio_account_sid": settings.twilio_account_sid,
        "twilio_auth_token": settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None,
        "twilio_from_number": settings.twilio_from_number,
        "twilio_messaging_service_sid": settings.twilio_messaging_service_sid,
        "twilio_api_base_url": settings.twilio_api_base_url,
        "smtp_host": settings.smtp_host,
        "smtp_port": settings.smtp_port,
        "smtp_username": settings.smtp_username,
        "smtp_password": settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        "smtp_from": settings.smtp_from,
        "smtp_tls": settings.smtp_tls,
        "smtp_timeout": settings.smtp_timeout_seconds,
        "broadcast_push_url": settings.broadcast_push_url,
    }


def build_channels(settings: Settings) -> registry.ChannelRegistry:
    assignment = {c: "console" for c in CHANNELS}
    assignment.update(settings.adapter_for())
    try:
        return registry.build(assignment, channel_config(settings))
    except ChannelConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
