"""A local HTTP server that speaks the slice of Tencent Cloud's SMS API (sms 2021-01-11) the adapter uses.

Requests are what the official SDK sends: POST / with a JSON body, the action in `X-TC-Action`, signed with
TC3-HMAC-SHA256 (canonical request of method, path, query, the signed headers `content-type;host` and the
SHA-256 of the body; the key derived from "TC3" + SecretKey through the date, the service and "tc3_request").
The server recomputes the signature from the documentation, independently of the SDK, and answers Tencent's
errors when it does not hold (AuthFailure.SignatureFailure, .SecretIdNotFound, .SignatureExpire), always as
HTTP 200 with `Response.Error`, as Tencent does. A SendSms answer has one SendStatus per number.

Templates are registered with one length cap per variable ({1}, {2} … in order), as Tencent's console shows
them; a longer value is refused like Tencent refuses it. `latency` is called per request for the seconds to wait
before answering; faults (an HTTP status, a Tencent error code, a hang) can be scripted for the next requests.
Used by the tests and importable by benchmarks (`start(fake)` in the caller's event loop).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

SECRET_ID = "AKIDtestTencentSecretId0123456789"
SECRET_KEY = "test-tencent-secret-key-0123456789"
SDK_APP_ID = "1400000001"
SIGN_NAME = "浙江防汛"
MAINLAND = re.compile(r"^\+861[3-9]\d{9}$")
ALGORITHM = "TC3-HMAC-SHA256"
SERVICE = "sms"
VERSION = "2021-01-11"
# As a county registers them: the alert carries the person's link token (28 characters: a longer variable
# registered for it); the all-clear reads the same for everyone of an area. REGISTERED is what Tencent's console
# holds (each variable's cap, {1} {2} … in order); TEMPLATES the matching TENCENT_SMS_TEMPLATES.
TEMPLATES = "alert=1001:sender/12,area/12,hazard,level,reply_code,token/28;allclear=1002:area/12,hazard,level"
REGISTERED = {"1001": (12, 12, 6, 6, 6, 28), "1002": (12, 6, 6)}


@dataclass
class TencentFault:
    status: int = 200  # HTTP status; 200 answers `code` as Tencent's error
    code: str = "LimitExceeded.AppDailyLimit"
    message: str = "业务短信日下发条数超过设定的上限"
    hang: float = 0.0  # seconds to wait before answering (a timeout test waits past its adapter's limit)
    then_send: bool = False  # after the hang, take the request as if nothing happened (it did go out)
    drop: bool = False  # take the request, then cut the connection before answering


def tc3_signature(secret_key: str, *, method: str, path: str, query: str, headers: dict[str, str],
                  signed: list[str], payload: bytes, timestamp: str, date: str, service: str) -> str:
    """Tencent's TC3-HMAC-SHA256 as documented (written here from the documentation, not taken from the SDK)."""
    canonical_headers = "".join(f"{h}:{headers.get(h, '').strip().lower()}\n" for h in signed)
    canonical = "\n".join([method, path or "/", query, canonical_headers, ";".join(signed),
                           hashlib.sha256(payload).hexdigest()])
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join([ALGORITHM, timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])

    def mac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    signing = mac(mac(mac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()


@dataclass
class FakeTencent:
    secret_id: str = SECRET_ID
    secret_key: str = SECRET_KEY
    sdk_app_id: str = SDK_APP_ID
    sign_names: set[str] = field(default_factory=lambda: {SIGN_NAME})
    templates: dict[str, tuple[int, ...]] = field(default_factory=dict)  # TemplateId → cap of {1}, {2} …
    latency: Callable[[], float] = field(default=lambda: 0.0)
    requests: list[dict[str, Any]] = field(default_factory=list)
    faults: deque[TencentFault] = field(default_factory=deque)
    base_url: str = ""
    in_flight: int = 0
    max_in_flight: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, *faults: TencentFault) -> None:
        self.faults.extend(faults)

    def sent(self) -> list[tuple[str, str, list[str]]]:
        """(SerialNo, +86 number, template values) of every SMS Tencent took."""
        return [(s, n, r["params"]) for r in self.requests for s, n in r.get("accepted", [])]

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            raw = await request.read()
            record: dict[str, Any] = {"action": request.headers.get("X-TC-Action", ""), "code": None}
            self.requests.append(record)
            wait = self.latency()
            if wait:
                await asyncio.sleep(wait)
            status, body = await self._answer(request, raw, record)
            error = body["Response"].get("Error")
            record["code"] = error["Code"] if error else "Ok"
            # Exactly "application/json": the SDK reads `Response.Error` only under that content type.
            return web.Response(status=status, body=json.dumps(body, ensure_ascii=False).encode(),
                                headers={"Content-Type": "application/json"})
        finally:
            self.in_flight -= 1

    def _check_signature(self, request: web.Request, raw: bytes) -> str | None:
        auth = request.headers.get("Authorization", "")
        m = re.fullmatch(rf"{ALGORITHM} Credential=([^/]+)/(\d{{4}}-\d{{2}}-\d{{2}})/([a-z]+)/tc3_request, "
                         r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", auth)
        if not m:
            return "AuthFailure.InvalidAuthorization"
        secret_id, date, service, signed, signature = m.groups()
        if secret_id != self.secret_id:
            return "AuthFailure.SecretIdNotFound"
        signed_headers = signed.split(";")
        if service != SERVICE or "content-type" not in signed_headers or "host" not in signed_headers:
            return "AuthFailure.InvalidAuthorization"
        timestamp = request.headers.get("X-TC-Timestamp", "")
        if not timestamp.isdigit():
            return "AuthFailure.InvalidAuthorization"
        at = datetime.fromtimestamp(int(timestamp), UTC)
        if abs((datetime.now(UTC) - at).total_seconds()) > 300 or at.strftime("%Y-%m-%d") != date:
            return "AuthFailure.SignatureExpire"
        headers = {k.lower(): v for k, v in request.headers.items()}
        expected = tc3_signature(self.secret_key, method=request.method, path=request.path,
                                 query=request.query_string, headers=headers, signed=signed_headers, payload=raw,
                                 timestamp=timestamp, date=date, service=service)
        if not hmac.compare_digest(expected, signature):
            return "AuthFailure.SignatureFailure"
        return None

    async def _answer(self, request: web.Request, raw: bytes, record: dict[str, Any]
                      ) -> tuple[int, dict[str, Any]]:
        rid = f"req-{next(self._ids):08d}"

        def error(code: str, message: str, status: int = 200) -> tuple[int, dict[str, Any]]:
            return status, {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": rid}}

        refused = self._check_signature(request, raw)
        if refused:
            return error(refused, f"signature refused ({refused})")
        if self.faults:
            fault = self.faults.popleft()
            if fault.hang:
                await asyncio.sleep(fault.hang)
            if fault.drop and request.transport is not None:
                record["accepted"] = []  # what Tencent did with it is unknown to the caller
                request.transport.abort()
                return 200, {"Response": {"RequestId": rid}}
            if not fault.then_send:
                if fault.status != 200:
                    return fault.status, {"message": fault.message}
                return error(fault.code, fault.message)
        if record["action"] != "SendSms" or request.headers.get("X-TC-Version") != VERSION:
            return error("InvalidAction", f"{record['action']} {request.headers.get('X-TC-Version')}")
        try:
            p = json.loads(raw)
        except ValueError:
            return error("FailedOperation.JsonParseFail", "JSON 解析失败")
        numbers, params = p.get("PhoneNumberSet") or [], p.get("TemplateParamSet") or []
        record.update(numbers=numbers, params=params, template=p.get("TemplateId"), context=p.get("SessionContext"))
        if not numbers:
            return error("MissingParameter.EmptyPhoneNumberSet", "手机号为空")
        if len(numbers) > 200:
            return error("LimitExceeded.PhoneNumberCountLimit", "单次提交的手机号个数超过200个")
        if p.get("SmsSdkAppId") != self.sdk_app_id:
            return error("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId 校验失败")
        if p.get("SignName") not in self.sign_names:
            return error("FailedOperation.SignatureIncorrectOrUnapproved", "签名未审批或格式错误")
        caps = self.templates.get(str(p.get("TemplateId")))
        if caps is None:
            return error("FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或内容不匹配")
        if len(params) != len(caps):
            return error("FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                         "请求内容与审核通过的模板内容不匹配")
        for value, cap in zip(params, caps, strict=True):
            if not value or len(value) > cap:
                return error("InvalidParameterValue.TemplateParameterLengthLimit", "单个模板变量字符数超过规定的限制数")
            if "://" in value:
                return error("InvalidParameterValue.ProhibitedUseUrlInTemplateParameter", "禁止在模板变量中使用 URL")
        statuses, accepted = [], []
        for n in numbers:
            if MAINLAND.match(n):
                serial = f"2640:{next(self._ids):020d}"
                accepted.append((serial, n))
                statuses.append({"SerialNo": serial, "PhoneNumber": n, "Fee": 1, "SessionContext": "",
                                 "Code": "Ok", "Message": "send success", "IsoCode": "CN"})
            else:
                statuses.append({"SerialNo": "", "PhoneNumber": n, "Fee": 0, "SessionContext": "",
                                 "Code": "InvalidParameterValue.IncorrectPhoneNumber", "Message": "手机号格式错误",
                                 "IsoCode": ""})
        record["accepted"] = accepted
        return 200, {"Response": {"SendStatusSet": statuses, "RequestId": rid}}


async def start(fake: FakeTencent) -> web.AppRunner:
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    fake.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return runner
