"""Link tokens: the per-key signer writes exactly the tokens make_token writes, and both parse back."""

import base64
import hashlib
import hmac

import pytest

from warning_service.notice.tokens import LinkSigner, link_key, make_token, parse_token

IDS = [0, 1, 2, 255, 256, 65_535, 129_122, 2**31 - 1, 2**32, 2**40 - 1]


@pytest.mark.parametrize("key", [link_key("a-secret"), b"", b"short", bytes(64), bytes(range(65)), b"k" * 200])
def test_signer_writes_the_tokens_make_token_writes(key):
    sign = LinkSigner(key).token
    for i in IDS + list(range(3, 3000, 7)):
        assert sign(i) == make_token(i, key=key)


def test_tokens_are_the_notice_id_and_a_truncated_hmac_sha256():
    key = link_key("a-secret")
    for i in IDS:
        raw = i.to_bytes(5, "big")
        mac = hmac.new(key, raw, hashlib.sha256).digest()[:16]
        assert make_token(i, key=key) == base64.urlsafe_b64encode(raw + mac).decode().rstrip("=")
        assert parse_token(LinkSigner(key).token(i), key=key) == i


def test_a_token_of_another_key_does_not_parse():
    assert parse_token(LinkSigner(link_key("one")).token(42), key=link_key("two")) is None
