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
    segments: int | None = None  # SMS parts the provider billed, when it says

    @classmethod
    def ok(cls, provider_id: str | None = None, *, delivered: bool = False, segments: int | None = None
           ) -> SendResult:
        return cls("delivered" if delivered else "sent", provider_id, segments=segments)

    @classmethod
    def transient(cls, code: str, message: str) -> SendResult:
        return cls("failed", None, code, message, retryable=True)

    @classmethod
    def permanent(cls, code: str, message: str) -> SendResult:
        return cls("failed", None, code, message, retryable=False)


@runtime_checkable
class Adapter(Protocol):
    """Adapters may also set `send_timeout` (seconds, or None for ones that cannot block); the dispatcher
    gives up on a send after that long and retries it later."""

    name: str

    async def send(self, message: Message) -> SendResult:
        """Send; never raise for provider errors — report them in the result."""
        ...

    async def aclose(self) -> None:
        ...


class ChannelConfigError(ValueError):
    """An adapter was chosen without the settings it needs."""


# GSM 03.38 basic set: texts made only of these go as 7-bit (160 per SMS, 153 per part); anything else,
# Chinese included, goes as UCS-2 (70 per SMS, 67 per part).
_GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
            "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM7_EXT = set("^{}\\[~]|€\f")
_GSM7_ALL = _GSM7 | _GSM7_EXT


def sms_segments(text: str) -> int:
    """How many SMS parts `text` takes (concatenated SMS carry a header, so parts hold a little less)."""
    chars = set(text)  # set operations and codecs run in C: this is called for every SMS of a batch
    if chars <= _GSM7_ALL:
        units = len(text) + sum(text.count(c) for c in chars & _GSM7_EXT)
        single, part = 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part = 70, 67
    if units <= single:
        return 1
    return -(-units // part)
