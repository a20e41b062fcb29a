"""The one interface every channel adapter implements."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

SendStatus = Literal["sent", "delivered", "failed"]


@dataclass(frozen=True)
class TemplateFields:
    """The parts of a warning text, for platforms that only send registered templates (签名 + 模板 + variables).

    Domestic SMS and voice platforms refuse free text: the county registers one template per message kind and
    the adapter fills its variables from these. `token` is the acknowledgment link's last path segment only,
    because platforms forbid a whole link as a variable (the registered host must be constant in the template).
    """

    sender: str = ""
    area: str = ""
    hazard: str = ""  # 台风, 暴雨 …
    level: str = ""  # 红色 …
    reply_code: str = ""
    token: str = ""
    deadline: str = ""  # local minute, e.g. 07-21 18:30
    sent_at: str = ""
    instruction: str = ""

    def get(self, name: str) -> str:
        return str(getattr(self, name))


@dataclass(frozen=True)
class BroadcastFields:
    """What a loudspeaker (应急广播) platform needs besides the text.

    One message goes to one village (`zone`, its division code): the platform plays it on `terminals`, the
    platform ids of the village's registered loudspeakers (empty: the platform's own list for the zone).
    """

    zone: str
    zone_name: str = ""
    town: str = ""  # the town's division code, for platforms that address by town
    terminals: tuple[str, ...] = ()
    level: str = ""  # red / orange / yellow / blue: the platform's priority
    repeat: int | None = None
    kind: str = ""  # alert / update / cancel


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
    # For template-only platforms (Aliyun, Tencent); the kind is metadata["kind"].
    template: TemplateFields | None = None
    # 应急广播: how many times each terminal should play it (issue 13 sets it; None means the platform default).
    broadcast_repeat: int | None = None
    # 应急广播 through a platform (channels/broadcast_http.py): zone, terminals, level, repeat.
    broadcast: BroadcastFields | None = None


@dataclass(frozen=True)
class SendResult:
    status: SendStatus
    provider_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool = False
    segments: int | None = None  # SMS parts the provider billed, when it says
    # The provider certainly did not take the message (connection refused, it answered 5xx / throttled /
    # out of quota): another provider may send it without the person getting it twice. A timeout after the
    # request left is NOT this: the provider may have sent it.
    not_sent: bool = False
    provider: str | None = None  # which provider answered, when an adapter composed of several did

    def refused(self) -> SendResult:
        """The same failure, marked as certainly not taken by the provider."""
        return replace(self, not_sent=True)

    @classmethod
    def ok(cls, provider_id: str | None = None, *, delivered: bool = False, segments: int | None = None
           ) -> SendResult:
        return cls("delivered" if delivered else "sent", provider_id, segments=segments)

    @classmethod
    def transient(cls, code: str, message: str) -> SendResult:
        return cls("failed", None, code, message, retryable=True)

    @classmethod
    def unavailable(cls, code: str, message: str) -> SendResult:
        """Transient and certainly not sent: the next provider may take it."""
        return cls("failed", None, code, message, retryable=True, not_sent=True)

    @classmethod
    def permanent(cls, code: str, message: str) -> SendResult:
        return cls("failed", None, code, message, retryable=False)


@runtime_checkable
class Adapter(Protocol):
    """Adapters may also set `send_timeout` (seconds, or None for ones that cannot block); the dispatcher
    gives up on a send after that long and retries it later.

    An adapter whose platform takes many messages in one call also sets `max_batch` (> 1) and implements
    `send_many(messages) -> list[SendResult]` (one result per message, in order, never raising): the
    dispatcher then hands it up to `max_batch` messages at once instead of one send per message.
    """

    name: str

    async def send(self, message: Message) -> SendResult:
        """Send; never raise for provider errors — report them in the result."""
        ...

    async def aclose(self) -> None:
        ...


def max_batch(adapter: Any) -> int:
    """How many messages `adapter` takes in one `send_many` (1: it sends one at a time)."""
    return max(1, int(getattr(adapter, "max_batch", 1) or 1))


async def send_many(adapter: Any, messages: list[Message]) -> list[SendResult]:
    """`adapter.send_many` where it has one, else each message through `send`, all at once."""
    if max_batch(adapter) > 1 and hasattr(adapter, "send_many"):
        return list(await adapter.send_many(messages))
    return list(await asyncio.gather(*(adapter.send(m) for m in messages)))


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
