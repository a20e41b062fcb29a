"""The one interface every channel adapter implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

SendStatus = Literal["sent", "delivered", "failed"]


@dataclass(frozen=True)
class Message:
    """A rendered message for one address. `idempotency_key` is stable across retries of the same message."""

    channel: str
    address: str
    body: str
    idempotency_key: str
    subject: str | None = None
    html: str | None = None
    # Voice: the text to read out and where the key press is posted; SMS: where status callbacks go.
    status_callback: str | None = None
    gather_action: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    status: SendStatus
    provider_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool = False

    @classmethod
    def ok(cls, provider_id: str | None = None, *, delivered: bool = False) -> SendResult:
        return cls("delivered" if delivered else "sent", provider_id)

    @classmethod
    def transient(cls, code: str, message: str) -> SendResult:
        return cls("failed", None, code, message, retryable=True)

    @classmethod
    def permanent(cls, code: str, message: str) -> SendResult:
        return cls("failed", None, code, message, retryable=False)


@runtime_checkable
class Adapter(Protocol):
    name: str

    async def send(self, message: Message) -> SendResult:
        """Send; never raise for provider errors — report them in the result."""
        ...

    async def aclose(self) -> None:
        ...


class ChannelConfigError(ValueError):
    """An adapter was chosen without the settings it needs."""
