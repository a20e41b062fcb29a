"""A local HTTP server that speaks the slice of Twilio's REST API v2010 the adapters use.

Shaped after Twilio's OpenAPI description (tests/data/twilio_api_v2010.slice.json, the Messages and Calls part
of twilio-oai's twilio_api_v2010.json): POST /2010-04-01/Accounts/{AccountSid}/Messages.json and
/Calls.json take form parameters under HTTP basic auth (account sid : auth token) and answer 201 with the
resource as JSON (sid, status, to, from, …); errors answer Twilio's error JSON {code, message, more_info,
status}. Tests can script faults (HTTP errors, a hang) that the next requests get, in order.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

SPEC = Path(__file__).resolve().parents[1] / "data" / "twilio_api_v2010.slice.json"
ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def spec_parameters() -> dict[str, tuple[set[str], set[str]]]:
    """resource → (every form parameter Twilio's spec allows, those it requires)."""
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    out = {}
    for resource in ("Messages", "Calls"):
        post = spec["paths"][f"/2010-04-01/Accounts/{{AccountSid}}/{resource}.json"]["post"]
        schema = post["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
        out[resource] = (set(schema["properties"]), set(schema.get("required", [])))
    return out


@dataclass
class Fault:
    status: int = 500
    code: int | None = None
    message: str = "Internal Server Error"
    hang: float = 0.0  # seconds to sleep before answering (longer than the client's timeout = a timeout)


@dataclass
class FakeTwilio:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    requests: list[dict[str, Any]] = field(default_factory=list)  # accepted and refused, in order
    faults: deque[Fault] = field(default_factory=deque)
    base_url: str = ""
    spec: dict[str, tuple[set[str], set[str]]] = field(default_factory=spec_parameters)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def messages(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["resource"] == "Messages" and r["answer"] == 201]

    def calls(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["resource"] == "Calls" and r["answer"] == 201]

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create("Messages"))
        app.router.add_post("/2010-04-01/Accounts/{sid}/Calls.json", self._create("Calls"))
        return app

    def _create(self, resource: str):
        async def handler(request: web.Request) -> web.Response:
            form = dict(await request.post())
            record: dict[str, Any] = {"resource": resource, "form": form, "answer": None,
                                      "accept": request.headers.get("Accept")}
            self.requests.append(record)
            answer = await self._answer(request, resource, form)
            record["answer"] = answer.status
            return answer

        return handler

    async def _answer(self, request: web.Request, resource: str, form: dict[str, Any]) -> web.Response:
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        allowed, required = self.spec[resource]
        # Strict like a contract test: a parameter the real API does not know is a bug in the adapter.
        unknown = sorted(set(form) - allowed)
        if unknown:
            return _error(400, 20001, f"Unknown parameters: {', '.join(unknown)}")
        missing = sorted(required - set(form))
        if missing:
            return _error(400, 21604 if "To" in missing else 20001, f"Missing parameters: {', '.join(missing)}")
        if self.faults:
            fault = self.faults.popleft()
            if fault.hang:
                await asyncio.sleep(fault.hang)
            return _error(fault.status, fault.code or fault.status, fault.message)
        to = str(form.get("To", ""))
        if not E164.match(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        n = next(self._ids)
        if resource == "Messages":
            if not form.get("Body"):
                return _error(400, 21602, "Message body is required.")
            if not (form.get("From") or form.get("MessagingServiceSid")):
                return _error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
            body = str(form["Body"])
            return _json(201, {
                "sid": f"SM{n:032x}", "account_sid": self.account_sid, "to": to, "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"), "body": body,
                "status": "accepted" if form.get("MessagingServiceSid") else "queued",
                "num_segments": str(_segments(body)), "num_media": "0", "direction": "outbound-api",
                "api_version": "2010-04-01", "error_code": None, "error_message": None, "price": None,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/SM{n:032x}.json"})
        if not form.get("From"):
            return _error(400, 21603, "A 'From' phone number is required.")
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            return _error(400, 21205, "Url parameter is required.")
        return _json(201, {
            "sid": f"CA{n:032x}", "account_sid": self.account_sid, "to": to, "from": form.get("From"),
            "status": "queued", "direction": "outbound-api", "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/CA{n:032x}.json"})

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user == self.account_sid and password == self.auth_token and \
            request.match_info["sid"] == self.account_sid


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def _error(status: int, code: int, message: str) -> web.Response:
    return _json(status, {"code": code, "message": message, "status": status,
                          "more_info": f"https://www.twilio.com/docs/errors/{code}"})


def _segments(body: str) -> int:
    units = len(body.encode("utf-16-le")) // 2
    single, part = (160, 153) if body.isascii() else (70, 67)
    return 1 if units <= single else -(-units // part)


async def start(fake: FakeTwilio) -> web.AppRunner:
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.base_url = f"http://127.0.0.1:{port}"
    return runner
