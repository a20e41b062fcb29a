"""Domain errors. Services raise these; the app turns them into bilingual JSON errors."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message_en: str, message_zh: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message_en)
        self.message_en = message_en
        self.message_zh = message_zh
        self.field = field
        self.extra = extra

    def headers(self) -> dict[str, str] | None:
        """HTTP headers the answer needs (Retry-After on a 429)."""
        return None

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in a pool's child process, it is pickled back to the parent whole (both messages, field).
        return (_rebuild, (type(self), self.message_en, self.message_zh, self.field, self.extra))

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message_en, "message_zh": self.message_zh}
        if self.field:
            body["field"] = self.field
        body.update(self.extra)
        return body


def _rebuild(cls: type[DomainError], message_en: str, message_zh: str, field: str | None,
             extra: dict[str, Any]) -> DomainError:
    return cls(message_en, message_zh, field=field, **extra)


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class Invalid(DomainError):
    status_code = 422
    code = "invalid"
