"""What a Tencent Cloud adapter needs besides its own API: the SDK client for an endpoint, and error classification.

The official SDK (tencentcloud-sdk-python-common, async client over httpx) signs every request with
TC3-HMAC-SHA256. Its retryer is left off (a retried SendSms could text a person twice) and so is its region
breaker (it would silently move calls to another region's endpoint; our breakers decide where a message goes).

Tencent answers HTTP 200 for its own errors, with `Response.Error.Code`; SendSms also answers one status per
number (`SendStatusSet[].Code`, "Ok" when accepted). Both kinds of code go through `answer_code`.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from channels.base import SendResult

OK = "Ok"
# The number itself cannot be reached by anyone: final, and no fault of the provider.
RECIPIENT_CODES = {"InvalidParameterValue.IncorrectPhoneNumber", "FailedOperation.PhoneNumberParseFail"}
# Tencent will not text this number now (its own frequency rules, or the person unsubscribed from our 签名 at
# Tencent): another provider may still reach them, and it says nothing about Tencent's health.
NUMBER_REFUSED_CODES = {"LimitExceeded.PhoneNumberDailyLimit", "LimitExceeded.PhoneNumberOneHourLimit",
                        "LimitExceeded.PhoneNumberThirtySecondLimit", "LimitExceeded.PhoneNumberSameContentDailyLimit",
                        "LimitExceeded.DeliveryFrequencyLimit", "FailedOperation.PhoneNumberInBlacklist"}
# Tencent's backend lost the message on its way to the carrier: it may have gone out. Never hand it on.
MAYBE_SENT_CODES = {"InternalError.Timeout", "InternalError.SendAndRecvFail", "InternalError.ParseBackendResponseFail",
                    "InternalError.OtherError", "InternalError.UnknownError"}
# Ours to fix or wait out (quota, throttling, account, credentials, Tencent's own trouble): Tencent did not send;
# retry, or let the next provider send it. These count against Tencent's breaker.
WAIT_PREFIXES = ("LimitExceeded.", "RequestLimitExceeded", "AuthFailure", "UnauthorizedOperation", "InternalError",
                 "ResourceUnavailable", "ResourceInsufficient", "ServiceUnavailable")
WAIT_CODES = {"FailedOperation.InsufficientBalanceInSmsPackage", "FailedOperation.ProhibitSubAccountUse"}
# Our own request was wrong in a way no provider would accept the same call for (more than 200 numbers).
OUR_BUG_CODES = {"LimitExceeded.PhoneNumberCountLimit"}


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's transport over aiohttp's connection pool, for the SDK's async client (which speaks httpx).

    httpcore's pool does work per idle connection (a poll() each) every time it queues or ends a request; at
    hundreds of calls in flight that cost more CPU than the calls themselves. aiohttp's pool does not (the Aliyun
    and Twilio adapters use it too). Errors come back as the httpx errors `classify` reads: a failed connection is
    ConnectError / ConnectTimeout (nothing sent), anything after is a read error or ReadTimeout (maybe sent).
    """

    def __init__(self, *, max_connections: int, timeout: float) -> None:
        self.max_connections = max_connections
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:  # made on first use: a session belongs to the running loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections),
                timeout=self.timeout, auto_decompress=True)
        try:
            async with self._session.request(request.method, str(request.url), data=request.content,
                                             headers=list(request.headers.multi_items())) as response:
                body = await response.read()
                return httpx.Response(response.status, headers=list(response.raw_headers), content=body,
                                      request=request)
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc), request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timeout", request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def sdk_client_args(*, secret_id: str, secret_key: str, endpoint: str, timeout: float, max_connections: int
                    ) -> tuple[Credential, ClientProfile, httpx.AsyncClient]:
    """`endpoint` is a host (sms.tencentcloudapi.com) or a URL (http://127.0.0.1:8123 for a local server).

    The third is the httpx client to put in place of the SDK's own (which keeps no connection alive, so a burst
    would shake hands for every text): kept-alive connections through aiohttp."""
    protocol, host = "https", endpoint
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        protocol, host = parts.scheme, parts.netloc
    http = HttpProfile(protocol=protocol, endpoint=host, reqMethod="POST", reqTimeout=timeout, keepAlive=True)
    profile = ClientProfile(signMethod="TC3-HMAC-SHA256", httpProfile=http, disable_region_breaker=True)
    transport = httpx.AsyncClient(timeout=httpx.Timeout(timeout),
                                  transport=AiohttpTransport(max_connections=max_connections, timeout=timeout))
    return Credential(secret_id, secret_key), profile, transport


def answer_code(code: str | None, message: str | None) -> SendResult | None:
    """A code Tencent answered (for the call or for one number): None when accepted, else the failure."""
    if code == OK:
        return None
    code = code or "no_code"
    label, text = f"tencent_{code}", (message or "")[:500]
    if code in RECIPIENT_CODES:
        return SendResult.permanent(label, text)
    if code in NUMBER_REFUSED_CODES or code in OUR_BUG_CODES:
        return SendResult.permanent(label, text).refused()
    if code in MAYBE_SENT_CODES:
        return SendResult.transient(label, text)
    if code in WAIT_CODES or code.startswith(WAIT_PREFIXES):
        return SendResult.unavailable(label, text)
    # Template, 签名, variable and content errors: this platform cannot send this text, another one may.
    return SendResult.permanent(label, text).refused()


def classify(exc: BaseException) -> SendResult:
    """Whatever the SDK raised → a result. Only a failure after the request left is "maybe sent"."""
    if isinstance(exc, TencentCloudSDKException):
        if exc.code == "ServerNetworkError":
            # The SDK's name for an HTTP status other than 200: Tencent (or its gateway) refused the call.
            return SendResult.unavailable("tencent_http_error", _text(exc.message))
        return answer_code(exc.code, _text(exc.message)) or SendResult.transient("tencent_no_code", "")
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        # No connection, so no request: nothing can have been sent.
        return SendResult.unavailable("network_refused", f"{type(exc).__name__}: {exc}"[:500])
    if isinstance(exc, httpx.TimeoutException | TimeoutError | asyncio.TimeoutError):
        return SendResult.transient("timeout", "Tencent did not answer in time")
    if isinstance(exc, httpx.TransportError):
        return SendResult.transient("network", f"{type(exc).__name__}: {exc}"[:500])
    return SendResult.transient("error", f"{type(exc).__name__}: {exc}"[:500])


def _text(message: Any) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return str(message or "")[:500]
