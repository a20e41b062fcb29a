"""Twilio (SMS and voice) through the official library: one async HTTP session, errors classified."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from channels.base import Message, SendResult
from channels.sms_twilio import send_sms
from channels.twilio_config import TwilioConfig, classify
from channels.voice_twilio import place_call

__all__ = ["TwilioAdapter", "TwilioConfig"]


class QuietHttpClient(AsyncTwilioHttpClient):
    """The library's client formats its request and response lines (headers included) for every call before
    the logger decides to drop them: ~11 formatted lines per SMS, a fifth of a worker's CPU in a profile
    (issue 17). Here they are built only when the twilio logger would write them (DEBUG/INFO on)."""

    def log_request(self, kwargs: dict[str, Any]) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            super().log_request(kwargs)

    def log_response(self, status_code: int, response: Any) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            super().log_response(status_code, response)

    async def request(self, method: str, url: str, params: Any = None, data: Any = None, headers: Any = None,
                      auth: Any = None, timeout: float | None = None,  # noqa: ASYNC109 — twilio's signature
                      allow_redirects: bool = False) -> Any:
        # aiohttp would form-encode the parameters byte by byte in Python (a Chinese SMS is ~600 bytes of
        # %XX); the same encoding through a table costs a fraction. Twilio sets the form content type.
        if isinstance(data, Mapping) and data:
            data = form_encode(data)
        return await super().request(method, url, params=params, data=data, headers=headers, auth=auth,
                                     timeout=timeout, allow_redirects=allow_redirects)


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_QUOTED = tuple(chr(b) if b in _SAFE else "+" if b == 0x20 else f"%{b:02X}" for b in range(256))


def _quote_plus(value: Any, safe: str = "", encoding: str | None = None, errors: str | None = None) -> str:
    raw = value.encode(encoding or "utf-8", errors or "strict") if isinstance(value, str) else bytes(value)
    return "".join(map(_QUOTED.__getitem__, raw))


def form_encode(data: Mapping[str, Any]) -> bytes:
    """application/x-www-form-urlencoded exactly as urllib's quote_plus writes it (what aiohttp sends)."""
    return urlencode(data, doseq=True, quote_via=_quote_plus).encode("ascii")


class TwilioAdapter:
    """Serves "sms" (Messages) and "voice" (Calls); one HTTP session shared by both."""

    name = "twilio"

    def __init__(self, config: TwilioConfig) -> None:
        self.config = config
        self._client: Client | None = None
        self._http: AsyncTwilioHttpClient | None = None

    @property
    def client(self) -> Client:
        # The aiohttp session must be created inside the running event loop, so lazily on first use.
        if self._client is None:
            http = QuietHttpClient(pool_connections=False)
            http.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.config.max_connections))
            client = Client(self.config.account_sid, self.config.auth_token, http_client=http, environment={})
            client.api.base_url = self.config.api_base_url.rstrip("/")
            self._client, self._http = client, http
        return self._client

    async def send(self, message: Message) -> SendResult:
        if message.channel not in ("sms", "voice"):
            return SendResult.permanent("unsupported_channel", f"twilio cannot send {message.channel}")
        try:
            async with asyncio.timeout(self.config.timeout):
                if message.channel == "sms":
                    return await send_sms(self.client, self.config, message)
                return await place_call(self.client, self.config, message)
        except Exception as exc:  # noqa: BLE001 — adapters report provider errors, never raise them
            return classify(exc)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._client = self._http = None
