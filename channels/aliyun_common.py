"""What the Aliyun SMS and voice adapters share: the SDK client for an endpoint, and error classification.

The official SDKs (alibabacloud-dysmsapi20170525, alibabacloud-dyvmsapi20170525) sign every request with
ACS3-HMAC-SHA256. They open one HTTP session per call, which is why SMS goes out in batches of 100.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from alibabacloud_tea_openapi.exceptions import AlibabaCloudException, ThrottlingException
from alibabacloud_tea_openapi.utils_models import Config as OpenApiConfig
from darabonba.exceptions import RetryError
from Tea.exceptions import UnretryableException

from channels.base import SendResult

# Codes in a 200 answer that concern the recipient's number: no provider can reach it.
RECIPIENT_CODES = {"isv.MOBILE_NUMBER_ILLEGAL", "isv.MOBILE_COUNT_OVER_LIMIT", "isv.BLACK_KEY_CONTROL_LIMIT",
                   "isv.DENY_IP_RANGE", "isv.PHONE_NUMBER_ILLEGAL"}
# Ours to fix or wait out (account, quota, throttling, template): Aliyun did not send; retry, or let the next
# provider send it.
WAIT_CODES = {"isv.BUSINESS_LIMIT_CONTROL", "isv.AMOUNT_NOT_ENOUGH", "isv.OUT_OF_SERVICE", "isv.ACCOUNT_ABNORMAL",
              "isv.DAY_LIMIT_CONTROL", "isp.SYSTEM_ERROR", "isp.RAM_PERMISSION_DENY", "Throttling.User",
              "isv.ACCOUNT_NOT_EXISTS", "SignatureDoesNotMatch", "InvalidAccessKeyId.NotFound", "ServiceUnavailable"}


def sdk_config(*, access_key_id: str, access_key_secret: str, endpoint: str, timeout: float,
               max_connections: int) -> OpenApiConfig:
    """`endpoint` is a host (dysmsapi.aliyuncs.com) or a URL (http://127.0.0.1:8123 for a local server)."""
    protocol, host = "https", endpoint
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        protocol, host = parts.scheme, parts.netloc
    return OpenApiConfig(access_key_id=access_key_id, access_key_secret=access_key_secret, endpoint=host,
                         protocol=protocol, read_timeout=int(timeout * 1000), connect_timeout=int(timeout * 1000),
                         max_idle_conns=max_connections)


def answer_code(code: str | None, message: str | None) -> SendResult | None:
    """A 200 answer's Code: None when accepted, else the failure (never a doubled send: Aliyun refused)."""
    if code == "OK":
        return None
    label, text = f"aliyun_{code or 'no_code'}", (message or "")[:500]
    if code in RECIPIENT_CODES:
        return SendResult.permanent(label, text)
    if code in WAIT_CODES:
        return SendResult.unavailable(label, text)
    # Template, signature and parameter errors: this platform cannot send this text, another one may.
    return SendResult.permanent(label, text).refused()


def classify(exc: BaseException) -> SendResult:
    """Whatever the SDK raised → a result. Only a transport failure after the request left is "maybe sent"."""
    if isinstance(exc, UnretryableException) and exc.inner_exception is not None:
        return classify(exc.inner_exception)
    if isinstance(exc, ThrottlingException):
        return SendResult.unavailable(f"aliyun_{exc.code}", str(exc.message)[:500])
    if isinstance(exc, AlibabaCloudException):
        # Aliyun answered with an HTTP error: it did not take the message.
        status = int(getattr(exc, "status_code", 0) or 0)
        return SendResult.unavailable(f"aliyun_{exc.code or status}", str(exc.message)[:500])
    if isinstance(exc, RetryError):
        # The SDK turns OSError into RetryError(text); refused / unreachable means nothing was sent.
        text = str(exc.message)
        if "Cannot connect" in text or "Connection refused" in text:
            return SendResult.unavailable("network_refused", text[:500])
        return SendResult.transient("network", text[:500])
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return SendResult.transient("timeout", "Aliyun did not answer in time")
    return SendResult.transient("error", f"{type(exc).__name__}: {exc}"[:500])
