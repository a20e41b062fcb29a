"""E-mail through SMTP (aiosmtplib): multipart text + HTML over a small pool of kept-open connections."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Literal

import aiosmtplib

from channels.base import Message, SendResult

DEFAULT_SUBJECT = "预警通知"


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    sender: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    tls: Literal["none", "starttls", "tls"] = "none"
    timeout: float = 10.0
    pool_size: int = 4
    validate_certs: bool = True

    @classmethod
    def from_mapping(cls, c: Mapping[str, Any]) -> SmtpConfig:
        return cls(host=c["smtp_host"], sender=c["smtp_from"], port=int(c.get("smtp_port") or 25),
                   username=c.get("smtp_username"), password=c.get("smtp_password"),
                   tls=c.get("smtp_tls") or "none", timeout=float(c.get("smtp_timeout") or 10.0),
                   pool_size=int(c.get("smtp_pool_size") or 4),
                   validate_certs=bool(c.get("smtp_validate_certs", True)))

    @property
    def domain(self) -> str:
        return self.sender.rsplit("@", 1)[-1].strip("> ") or "localhost"


def message_id(idempotency_key: str, domain: str) -> str:
    """The same Message-ID for every retry of one message, so a receiving server can drop a duplicate."""
    return f"<ws.{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


def build_email(config: SmtpConfig, message: Message) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = message.subject or DEFAULT_SUBJECT
    mail["From"] = config.sender
    mail["To"] = message.address
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = message_id(message.idempotency_key, config.domain)
    mail["X-Idempotency-Key"] = message.idempotency_key
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(message.body, charset="utf-8")
    if message.html:
        mail.add_alternative(message.html, subtype="html", charset="utf-8")
    return mail


def classify(exc: BaseException) -> SendResult:
    """SMTP 4xx and connection trouble retry; 5xx about the recipient or the message fail for good.

    Refusals of our own session (greeting, login, sender, "STARTTLS first") are about our configuration and
    would hit every message alike: they retry, so fixing the account lets the backlog through.
    """
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)[:500]
        if codes and all(500 <= c < 600 for c in codes):
            return SendResult.permanent(f"smtp_{codes[0]}", text)
        return SendResult.transient(f"smtp_{codes[0] if codes else 'refused'}", text)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError | aiosmtplib.SMTPHeloError
                  | aiosmtplib.SMTPSenderRefused) or getattr(exc, "code", None) == 530:
        return SendResult.transient(f"smtp_{exc.code}", f"{type(exc).__name__}: {exc.message}"[:500])
    if isinstance(exc, aiosmtplib.SMTPResponseException) and not isinstance(exc, aiosmtplib.SMTPConnectError):
        label = f"smtp_{exc.code}"
        if 500 <= exc.code < 600:
            return SendResult.permanent(label, str(exc.message)[:500])
        return SendResult.transient(label, str(exc.message)[:500])
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return SendResult.transient("timeout", "SMTP server did not answer in time")
    if isinstance(exc, aiosmtplib.SMTPException | OSError):
        return SendResult.transient("smtp_connect", f"{type(exc).__name__}: {exc}"[:500])
    return SendResult.transient("error", f"{type(exc).__name__}: {exc}"[:500])


class SmtpAdapter:
    name = "smtp"

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots: asyncio.Semaphore | None = None

    def _new_client(self) -> aiosmtplib.SMTP:
        c = self.config
        return aiosmtplib.SMTP(hostname=c.host, port=c.port, username=c.username, password=c.password,
                               timeout=c.timeout, use_tls=c.tls == "tls", start_tls=c.tls == "starttls",
                               validate_certs=c.validate_certs)

    async def _connected(self) -> tuple[aiosmtplib.SMTP, bool]:
        """An open connection (reused if one is idle; the flag says so) or a new one."""
        while self._idle:
            smtp = self._idle.pop()
            if smtp.is_connected:
                return smtp, True
        smtp = self._new_client()
        await smtp.connect()
        return smtp, False

    async def send(self, message: Message) -> SendResult:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.config.pool_size)
        mail = build_email(self.config, message)
        async with self._slots:
            for _ in range(2):
                smtp: aiosmtplib.SMTP | None = None
                try:
                    async with asyncio.timeout(self.config.timeout * 3):
                        smtp, reused = await self._connected()
                        await smtp.send_message(mail)
                except aiosmtplib.SMTPServerDisconnected as exc:
                    _close(smtp)
                    if smtp is not None and reused:
                        continue  # the kept-open connection went stale; one fresh try
                    return classify(exc)
                except Exception as exc:  # noqa: BLE001 — adapters report provider errors, never raise them
                    _close(smtp)
                    return classify(exc)
                self._idle.append(smtp)
                return SendResult.ok(mail["Message-ID"].strip("<>"))
        return SendResult.transient("smtp_connect", "server disconnected")

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for smtp in idle:
            try:
                await smtp.quit()
            except Exception:  # noqa: BLE001 — closing is best effort
                _close(smtp)


def _close(smtp: aiosmtplib.SMTP | None) -> None:
    if smtp is not None and smtp.is_connected:
        smtp.close()
