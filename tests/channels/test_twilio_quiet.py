"""The twilio library's per-call log lines cost CPU even when dropped: they are built only when written."""

from __future__ import annotations

import logging

from channels.twilio_common import QuietHttpClient


class Loud:
    """A response whose headers count how often the library formats them."""

    def __init__(self) -> None:
        self.formatted = 0

    @property
    def headers(self) -> str:
        self.formatted += 1
        return "h"


def test_request_and_response_lines_are_not_formatted_unless_the_twilio_logger_writes_them(caplog) -> None:
    client = QuietHttpClient()
    response = Loud()
    request = {"method": "POST", "url": "http://x/Messages.json", "params": None, "headers": {"A": "b"}}
    with caplog.at_level(logging.WARNING, logger="twilio.async_http_client"):
        client.log_request(request)
        client.log_response(201, response)
    assert response.formatted == 0 and not caplog.records
    with caplog.at_level(logging.INFO, logger="twilio.async_http_client"):
        client.log_response(201, response)
    assert response.formatted == 1 and caplog.records


def test_the_form_is_encoded_exactly_as_urllib_and_aiohttp_would() -> None:
    from urllib.parse import urlencode

    from channels.twilio_common import form_encode

    form = {"To": "+8613900000001", "From": "+15005550006", "StatusCallback": "https://h/s?o=12&x=1",
            "Body": "【浙江防汛】台风红色预警 ~a b+c&d=é 回复1 https://yj.example.gov.cn/a/xYz_-."}
    assert form_encode(form) == urlencode(form, doseq=True).encode()


def test_the_form_encoding_agrees_with_urllib_on_every_kind_of_character() -> None:
    import random
    from urllib.parse import urlencode

    import pytest

    from channels.twilio_common import form_encode

    rng = random.Random(17)
    alphabet = [chr(c) for c in range(0x80)] + list("é€预警叫应，。！～") + ["\U0001F30A", "\u3000", "\xa0"]
    for _ in range(300):
        form = {"Body": "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))), "N": rng.randint(0, 99)}
        assert form_encode(form) == urlencode(form, doseq=True).encode()
    with pytest.raises(UnicodeEncodeError):
        form_encode({"Body": "a\ud800b"})
