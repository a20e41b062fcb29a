"""The shared-secret signature both directions of the 应急广播 platform link carry.

HMAC-SHA256 over `timestamp + "." + body` (the exact bytes sent), hex, in one header, with the Unix timestamp
in another. The timestamp is inside the signed text, so an old request cannot be replayed with a fresh one;
the receiver refuses signatures older (or newer) than a few minutes. Webhook-style, as county platforms that
sign at all do it, and simple enough for any platform vendor to implement.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Broadcast-Signature"
TIMESTAMP_HEADER = "X-Broadcast-Timestamp"
MAX_SKEW_SECONDS = 300.0


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, *, now: float) -> dict[str, str]:
    ts = str(int(now))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: signature(secret, ts, body)}


def check(secret: str, *, timestamp: str | None, given: str | None, body: bytes, now: float,
          max_skew: float = MAX_SKEW_SECONDS) -> str | None:
    """None when the signature holds; otherwise why not (for the log, never for the caller)."""
    if not timestamp or not given:
        return "missing signature or timestamp header"
    if not timestamp.isdigit():
        return "timestamp is not a Unix time"
    if abs(now - int(timestamp)) > max_skew:
        return "timestamp outside the allowed window"
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), given.strip().lower().encode()):
        return "signature mismatch"
    return None
