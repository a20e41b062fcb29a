"""A local HTTP server that speaks the slice of Aliyun's dysmsapi / dyvmsapi (RPC style, 2017-05-25) the adapters use.

Requests are what the official SDK sends: POST / with the action in `x-acs-action`, parameters in the query
and the form body, signed with ACS3-HMAC-SHA256 (Aliyun's V3 signature: canonical request of method, path,
sorted query, the signed headers and the SHA-256 of the body; HMAC-SHA256 with the AccessKey secret). The
server recomputes the signature independently of the SDK and answers 400 SignatureDoesNotMatch when it does
not hold, refuses a reused nonce and a stale x-acs-date, and answers Aliyun's JSON ({Code, Message, BizId,
RequestId}). `latency` is called per request for the seconds to wait before answering; faults can be
scripted for the next requests.
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
from urllib.parse import parse_qsl, quote

from aiohttp import web

ACCESS_KEY_ID = "LTAI5tTestAccessKeyId01"
ACCESS_KEY_SECRET = "test-aliyun-secret-0123456789abcdef"
MAINLAND = re.compile(r"^1[3-9]\d{9}$")
ALGORITHM = "ACS3-HMAC-SHA256"


@dataclass
class AliyunFault:
    status: int = 500  # HTTP status; 200 with `code` answers a business error the way Aliyun does
    code: str = "ServiceUnavailable"
    message: str = "The request has failed due to a temporary failure of the server."
    hang: float = 0.0


def v3_signature(secret: str, *, method: str, path: str, query: dict[str, str], headers: dict[str, str],
                 signed: list[str], payload_hash: str) -> str:
    """Aliyun's V3 signature as documented (written here from the documentation, not taken from the SDK)."""
    canonical_query = "&".join(f"{quote(k, safe='~')}={quote(query[k], safe='~')}" for k in sorted(query))
    canonical_headers = "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in signed)
    canonical = "\n".join([method, path or "/", canonical_query, canonical_headers, ";".join(signed), payload_hash])
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


@dataclass
class FakeAliyun:
    access_key_id: str = ACCESS_KEY_ID
    access_key_secret: str = ACCESS_KEY_SECRET
    sign_names: set[str] = field(default_factory=lambda: {"浙江防汛"})
    templates: dict[str, set[str]] = field(default_factory=dict)  # registered code → its variable names
    show_numbers: set[str] = field(default_factory=set)  # purchased caller numbers (voice); empty: any
    voice_variable_max: int = 20
    latency: Callable[[], float] = field(default=lambda: 0.0)
    requests: list[dict[str, Any]] = field(default_factory=list)
    faults: deque[AliyunFault] = field(default_factory=deque)
    base_url: str = ""
    in_flight: int = 0
    max_in_flight: int = 0
    _nonces: set[str] = field(default_factory=set)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, *faults: AliyunFault) -> None:
        self.faults.extend(faults)

    def accepted(self, action: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["code"] == "OK" and (action is None or r["action"] == action)]

    def sent(self) -> list[tuple[str, str, dict[str, str]]]:
        """(BizId, number, template values) of every accepted SMS."""
        out = []
        for r in self.accepted():
            if r["action"] in ("SendSms", "SendBatchSms"):
                out += [(r["biz_id"], n, v) for n, v in zip(r["numbers"], r["values"], strict=True)]
        return out

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            raw = await request.read()
            action = request.headers.get("x-acs-action", "")
            query = dict(request.query)
            form = dict(parse_qsl(raw.decode(), keep_blank_values=True)) if raw else {}
            record: dict[str, Any] = {"action": action, "query": query, "form": form, "code": None}
            self.requests.append(record)
            wait = self.latency()
            if wait:
                await asyncio.sleep(wait)
            status, body = self._answer(request, raw, action, {**query, **form}, record)
            record["code"] = body.get("Code")
            return web.Response(status=status, text=json.dumps(body, ensure_ascii=False),
                                content_type="application/json")
        finally:
            self.in_flight -= 1

    def _check_signature(self, request: web.Request, raw: bytes) -> str | None:
        auth = request.headers.get("Authorization", "")
        m = re.fullmatch(rf"{ALGORITHM} Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]+)", auth)
        if not m:
            return "IncompleteSignature"
        credential, signed, signature = m.group(1), m.group(2).split(";"), m.group(3)
        if credential != self.access_key_id:
            return "InvalidAccessKeyId.NotFound"
        payload_hash = hashlib.sha256(raw).hexdigest()
        if request.headers.get("x-acs-content-sha256") != payload_hash:
            return "SignatureDoesNotMatch"
        if "host" not in signed or not all(h in signed for h in ("x-acs-action", "x-acs-date",
                                                                  "x-acs-signature-nonce")):
            return "IncompleteSignature"
        headers = {k.lower(): v for k, v in request.headers.items()}
        expected = v3_signature(self.access_key_secret, method=request.method, path=request.path,
                                query=dict(request.query), headers=headers, signed=signed,
                                payload_hash=payload_hash)
        if not hmac.compare_digest(expected, signature):
            return "SignatureDoesNotMatch"
        nonce = headers.get("x-acs-signature-nonce", "")
        if nonce in self._nonces:
            return "SignatureNonceUsed"
        self._nonces.add(nonce)
        try:
            at = datetime.strptime(headers.get("x-acs-date", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "InvalidTimeStamp.Format"
        if abs((datetime.now(UTC) - at).total_seconds()) > 900:
            return "InvalidTimeStamp.Expired"
        return None

    def _answer(self, request: web.Request, raw: bytes, action: str, p: dict[str, str],
                record: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        rid = f"REQ-{next(self._ids):08d}"
        refused = self._check_signature(request, raw)
        if refused:
            return 400, {"Code": refused, "Message": f"Specified signature is not matched ({refused})",
                         "RequestId": rid}
        if self.faults:
            fault = self.faults.popleft()
            return fault.status, {"Code": fault.code, "Message": fault.message, "RequestId": rid}
        if action == "SendSms":
            numbers = p.get("PhoneNumbers", "").split(",")
            values = [json.loads(p.get("TemplateParam") or "{}")] * len(numbers)
            signs = [p.get("SignName", "")] * len(numbers)
        elif action == "SendBatchSms":
            numbers, signs = json.loads(p.get("PhoneNumberJson", "[]")), json.loads(p.get("SignNameJson", "[]"))
            values = json.loads(p.get("TemplateParamJson", "[]"))
            if not (len(numbers) == len(signs) == len(values)) or not numbers:
                return 200, {"Code": "isv.INVALID_JSON_PARAM", "Message": "JSON 参数不合法", "RequestId": rid}
            if len(numbers) > 100:
                return 200, {"Code": "isv.MOBILE_COUNT_OVER_LIMIT", "Message": "号码数量超限", "RequestId": rid}
        elif action in ("SingleCallByTts", "IvrCall"):
            return self._call(action, p, record, rid)
        else:
            return 400, {"Code": "InvalidAction.NotFound", "Message": action, "RequestId": rid}
        code = p.get("TemplateCode", "")
        if code not in self.templates:
            return 200, {"Code": "isv.SMS_TEMPLATE_ILLEGAL", "Message": "模板不合法", "RequestId": rid}
        if any(s not in self.sign_names for s in signs):
            return 200, {"Code": "isv.SMS_SIGNATURE_ILLEGAL", "Message": "签名不合法", "RequestId": rid}
        if any(not MAINLAND.match(n) for n in numbers):
            return 200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": rid}
        for v in values:
            if set(v) != self.templates[code]:
                return 200, {"Code": "isv.TEMPLATE_MISSING_PARAMETERS", "Message": "模板变量缺少对应参数值",
                             "RequestId": rid}
            if any(not str(x) or len(str(x)) > 35 for x in v.values()):
                return 200, {"Code": "isv.PARAM_LENGTH_LIMIT", "Message": "参数超出长度限制", "RequestId": rid}
        biz_id = f"{next(self._ids):012d}^0"
        record.update(numbers=numbers, values=values, biz_id=biz_id)
        return 200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": rid}

    def _call(self, action: str, p: dict[str, str], record: dict[str, Any], rid: str
              ) -> tuple[int, dict[str, Any]]:
        """SingleCallByTts (TtsCode, TtsParam) or IvrCall (StartCode, StartTtsParams, MenuKeyMap.N.*)."""
        number = p.get("CalledNumber", "")
        if not MAINLAND.match(number):
            return 200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "号码格式非法", "RequestId": rid}
        if self.show_numbers and p.get("CalledShowNumber") not in self.show_numbers:
            return 200, {"Code": "isv.DISPLAY_NUMBER_ILLEGAL", "Message": "外显号码不合法", "RequestId": rid}
        if not 1 <= int(p.get("PlayTimes") or 1) <= 3:
            return 200, {"Code": "isv.INVALID_PARAMETERS", "Message": "PlayTimes 取值 1~3", "RequestId": rid}
        if len(p.get("OutId", "").encode()) > 15:
            return 200, {"Code": "isv.INVALID_PARAMETERS", "Message": "OutId 长度 1~15 字节", "RequestId": rid}
        ivr = action == "IvrCall"
        code = p.get("StartCode" if ivr else "TtsCode", "")
        values = json.loads(p.get("StartTtsParams" if ivr else "TtsParam") or "{}")
        menu = {p[k]: p.get(k.removesuffix("Key") + "Code", "") for k in p
                if k.startswith("MenuKeyMap.") and k.endswith(".Key")}
        codes = [code, *menu.values(), *([p["ByeCode"]] if p.get("ByeCode") else [])]
        if any(c not in self.templates for c in codes) or (ivr and not menu):
            return 200, {"Code": "isv.TTS_TEMPLATE_ILLEGAL", "Message": "模板不合法", "RequestId": rid}
        if set(values) != self.templates[code]:
            return 200, {"Code": "isv.TEMPLATE_MISSING_PARAMETERS", "Message": "模板变量缺少对应参数值",
                         "RequestId": rid}
        if any(not str(x) or len(str(x)) > self.voice_variable_max for x in values.values()):
            return 200, {"Code": "isv.PARAM_LENGTH_LIMIT", "Message": "参数超出长度限制", "RequestId": rid}
        call_id = f"{next(self._ids):09d}^{next(self._ids):012d}"
        record.update(numbers=[number], values=[values], call_id=call_id, out_id=p.get("OutId"), template=code,
                      menu=menu, bye=p.get("ByeCode"), play_times=p.get("PlayTimes"), timeout=p.get("Timeout"))
        return 200, {"Code": "OK", "Message": "OK", "CallId": call_id, "RequestId": rid}

    def calls(self) -> list[dict[str, Any]]:
        return [r for r in self.accepted() if r["action"] in ("SingleCallByTts", "IvrCall")]


async def start(fake: FakeAliyun) -> web.AppRunner:
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    fake.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return runner
