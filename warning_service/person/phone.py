"""Phone numbers as people write them in China, stored as E.164."""

from __future__ import annotations

import re

import phonenumbers

_SEPARATORS = re.compile(r"[\s\-()（）]")


class PhoneError(ValueError):
    pass


def normalize_phone(raw: str) -> str:
    """'13812345678', '+86 138-1234-5678', '0576-86123456' → '+8613812345678' / '+8657686123456'."""
    cleaned = _SEPARATORS.sub("", raw.strip().translate(_FULLWIDTH))
    if not cleaned:
        raise PhoneError("empty phone number")
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    try:
        num = phonenumbers.parse(cleaned, "CN")
    except phonenumbers.NumberParseException as exc:
        raise PhoneError(f"not a phone number: {raw!r}") from exc
    if not phonenumbers.is_valid_number(num):
        raise PhoneError(f"not a valid phone number: {raw!r}")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


_FULLWIDTH = {ord(c): ord(c) - 0xFEE0 for c in "０１２３４５６７８９＋"}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def valid_email(raw: str) -> bool:
    return bool(_EMAIL.match(raw)) and len(raw) <= 254
