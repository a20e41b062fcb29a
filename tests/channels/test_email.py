"""The SMTP adapter against a real SMTP server (aiosmtpd): content, refusals, TLS, a server back up."""

from __future__ import annotations

import pytest

from channels.base import Message
from channels.email_smtp import SmtpAdapter, SmtpConfig, message_id
from tests.channels.smtp_server import Inbox, free_port, self_signed, server_context, start_smtp

SUBJECT = "【台风红色预警】温岭市防汛防台抗旱指挥部发布台风红色预警"
BODY = "人员1:温岭市发布台风红色预警,请立即到岗。确认收到请点击 http://ws.test/a/tok123"
HTML = "<p>温岭市发布<b>台风红色预警</b>,请立即到岗。<a href=\"http://ws.test/a/tok123\">确认收到</a></p>"


def mail(to: str = "p1@example.cn") -> Message:
    return Message(channel="email", address=to, body=BODY, subject=SUBJECT, html=HTML,
                   idempotency_key="n1:alert:r1:email")


def adapter(port: int, **kw) -> SmtpAdapter:
    return SmtpAdapter(SmtpConfig(host="127.0.0.1", port=port, sender="预警平台 <alerts@ws.example.cn>",
                                  timeout=3.0, **kw))


async def test_message_arrives_multipart_with_subject_chinese_text_and_link(smtp_server) -> None:
    controller, inbox = smtp_server
    a = adapter(controller.port)
    try:
        result = await a.send(mail())
        second = await a.send(mail("p2@example.cn"))  # over the kept-open connection
    finally:
        await a.aclose()
    assert result.status == "sent" and second.status == "sent"
    assert [e[1] for e in inbox.envelopes] == [["p1@example.cn"], ["p2@example.cn"]]
    got = inbox.received[0]
    assert got["Subject"] == SUBJECT
    assert got["To"] == "p1@example.cn"
    assert got["Message-ID"] == message_id("n1:alert:r1:email", "ws.example.cn")
    assert got["X-Idempotency-Key"] == "n1:alert:r1:email"
    text = got.get_body(("plain",)).get_content()
    html = got.get_body(("html",)).get_content()
    assert "台风红色预警" in text and "http://ws.test/a/tok123" in text
    assert "<b>台风红色预警</b>" in html and 'href="http://ws.test/a/tok123"' in html


@pytest.mark.parametrize(("reply", "code", "retryable"), [
    ("550 5.1.1 No such user", "smtp_550", False),
    ("451 4.3.0 Try again later", "smtp_451", True),
])
async def test_recipient_refusals_are_classified_by_smtp_class(smtp_server, reply: str, code: str,
                                                                retryable: bool) -> None:
    controller, inbox = smtp_server
    inbox.refuse_rcpt.append(reply)
    a = adapter(controller.port)
    try:
        result = await a.send(mail())
    finally:
        await a.aclose()
    assert (result.status, result.error_code, result.retryable) == ("failed", code, retryable)
    assert inbox.received == []


async def test_a_rejected_message_body_is_permanent(smtp_server) -> None:
    controller, inbox = smtp_server
    inbox.refuse_data.append("554 5.6.0 Message rejected as spam")
    a = adapter(controller.port)
    try:
        result = await a.send(mail())
    finally:
        await a.aclose()
    assert (result.error_code, result.retryable) == ("smtp_554", False)


async def test_server_down_is_retryable_and_up_again_delivers() -> None:
    port = free_port()
    a = adapter(port)
    inbox = Inbox()
    try:
        down = await a.send(mail())
        controller = start_smtp(inbox, port=port)
        try:
            up = await a.send(mail())
        finally:
            controller.stop()
    finally:
        await a.aclose()
    assert (down.status, down.error_code, down.retryable) == ("failed", "smtp_connect", True)
    assert up.status == "sent" and len(inbox.received) == 1


async def test_a_dropped_kept_open_connection_is_replaced(smtp_server) -> None:
    controller, inbox = smtp_server
    a = adapter(controller.port)
    try:
        assert (await a.send(mail())).status == "sent"
        for smtp in a._idle:  # the server side goes away (idle timeout, restart)
            smtp.transport.close()
        assert (await a.send(mail("p2@example.cn"))).status == "sent"
    finally:
        await a.aclose()
    assert len(inbox.received) == 2


async def test_starttls_and_implicit_tls(tmp_path) -> None:
    cert, key = self_signed(tmp_path)
    inbox = Inbox()
    starttls = start_smtp(inbox, tls_context=server_context(cert, key), require_starttls=True)
    implicit = start_smtp(inbox, ssl_context=server_context(cert, key))
    a = adapter(starttls.port, tls="starttls", validate_certs=False)
    b = adapter(implicit.port, tls="tls", validate_certs=False)
    plain = adapter(starttls.port)  # the server insists on STARTTLS
    try:
        assert (await a.send(mail())).status == "sent"
        assert (await b.send(mail())).status == "sent"
        refused = await plain.send(mail())
    finally:
        for x in (a, b, plain):
            await x.aclose()
        starttls.stop()
        implicit.stop()
    assert len(inbox.received) == 2
    # our configuration is wrong, not the address: kept for retry rather than failed for good
    assert (refused.status, refused.error_code, refused.retryable) == ("failed", "smtp_530", True)
