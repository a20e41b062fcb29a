"""One provider name serving several channels with a different API each (Aliyun: dysmsapi and dyvmsapi)."""

from __future__ import annotations

from collections.abc import Mapping

from channels.base import Adapter, Message, SendResult


class ByChannel:
    """Routes each message to the adapter of its channel; looks like one adapter to the registry."""

    def __init__(self, name: str, adapters: Mapping[str, Adapter]) -> None:
        self.name = name
        self.adapters = dict(adapters)
        timeouts = [getattr(a, "send_timeout", None) for a in self.adapters.values()]
        self.send_timeout = max((t for t in timeouts if t is not None), default=None)

    async def send(self, message: Message) -> SendResult:
        adapter = self.adapters.get(message.channel)
        if adapter is None:
            return SendResult.permanent("unsupported_channel", f"{self.name} cannot send {message.channel}")
        return await adapter.send(message)

    async def aclose(self) -> None:
        for adapter in self.adapters.values():
            await adapter.aclose()
