"""Acknowledgment link tokens: the notice id plus a 128-bit HMAC, so links are unguessable and stateless."""

from __future__ import annotations

import base64
import hashlib
import hmac

_MAC_BYTES = 16  # 128 bits


def link_key(secret: str) -> bytes:
    return hashlib.sha256(b"warning-service ack-link v1:" + secret.encode()).digest()


def make_token(notice_id: int, *, key: bytes) -> str:
    """A short URL-safe token bound to one notice (≈ 27 characters)."""
    raw = notice_id.to_bytes(5, "big")
    mac = hmac.digest(key, raw, "sha256")[:_MAC_BYTES]  # one-shot C HMAC: a province renders 130,000 links
    return base64.urlsafe_b64encode(raw + mac).decode().rstrip("=")


def parse_token(token: str, *, key: bytes) -> int | None:
    """The notice id, or None if the token is malformed or forged (constant-time comparison)."""
    if not token or len(token) > 64:
        return None
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if len(data) != 5 + _MAC_BYTES:
        return None
    raw, mac = data[:5], data[5:]
    expected = hmac.new(key, raw, hashlib.sha256).digest()[:_MAC_BYTES]
    if not hmac.compare_digest(mac, expected):
        return None
    return int.from_bytes(raw, "big")
