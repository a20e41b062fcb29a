"""A local 应急广播 platform: takes signed play requests, "plays" them on terminals, pushes signed receipts back.

For the tests (in-process: `await BroadcastSimulator(...).start()`) and for the demo:

    python -m channels.broadcast_simulator --port 19700 --secret S --offline T-3 \\
        --receipts-url http://127.0.0.1:8000/webhooks/broadcast/receipts

It checks each request's signature (403 otherwise), keeps task ids (a retried task plays once), plays every
terminal named in the request except those it is told are off line (a `failed` receipt with reason
`offline`), and reports `started` then `finished` with the repeat count, in the receipt shape the service
reads by default. It reads the default request template's field names; another template's names are given
with `fields`. Receipts wait in `pending` until `push_receipts()` (tests: no sleeps, nothing in the
background), or are pushed after `play_seconds` when `auto_push` is on (the demo).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from aiohttp import web

from channels.broadcast_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, check, signed_headers

DEFAULT_FIELDS = {"task": "taskId", "zone": "zoneCode", "terminals": "terminalIds", "text": "content",
                  "repeat": "repeat", "priority": "priority", "callback": "callbackUrl"}


@dataclass
class Task:
    task_id: str
    zone: str
    terminals: list[str]
    text: str
    repeat: int
    priority: int | None
    callback: str | None
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class BroadcastSimulator:
    secret: str
    receipt_url: str | None = None  # else each request's callback URL
    offline: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.time
    http: httpx.AsyncClient | None = None
    fields: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELDS))
    auto_push: bool = False
    play_seconds: float = 0.0
    tasks: dict[str, Task] = field(default_factory=dict)
    requests: list[Task] = field(default_factory=list)  # every accepted request, duplicates included
    refused: int = 0  # requests with a bad or missing signature
    answers: list[int] = field(default_factory=list)  # statuses to answer next (fault injection), then 200
    pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (url, receipt)
    pushed: list[dict[str, Any]] = field(default_factory=list)
    _seq: int = 0
    _runner: web.AppRunner | None = None
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/broadcast", self._play)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on a real port; returns the play URL."""
        self._runner = web.AppRunner(self.app())
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0][1]
        return f"http://{host}:{bound}/api/broadcast"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _play(self, request: web.Request) -> web.Response:
        body = await request.read()
        why = check(self.secret, timestamp=request.headers.get(TIMESTAMP_HEADER),
                    given=request.headers.get(SIGNATURE_HEADER), body=body, now=self.clock())
        if why is not None:
            self.refused += 1
            return web.json_response({"code": 401, "message": why}, status=403)
        if self.answers:
            status = self.answers.pop(0)
            return web.json_response({"code": status, "message": "simulated fault"}, status=status)
        try:
            data = json.loads(body)
            f = self.fields
            task = Task(task_id=str(data[f["task"]]), zone=str(data.get(f["zone"], "")),
                        terminals=[str(t) for t in data[f["terminals"]]], text=str(data[f["text"]]),
                        repeat=int(data[f["repeat"]]), priority=data.get(f["priority"]),
                        callback=data.get(f["callback"]), body=data, headers=dict(request.headers))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"code": 400, "message": f"bad request: {exc!r}"}, status=400)
        self.requests.append(task)
        if task.task_id in self.tasks:
            return web.json_response({"code": 0, "taskId": task.task_id, "duplicate": True})
        self.tasks[task.task_id] = task
        self._queue(task)
        if self.auto_push:
            pushing = asyncio.get_running_loop().create_task(self._push_later())
            self._background.add(pushing)  # the loop keeps only a weak reference
            pushing.add_done_callback(self._background.discard)
        return web.json_response({"code": 0, "taskId": task.task_id})

    def _receipt(self, task: Task, terminal: str, event: str, *, repeats: int, error: str | None = None
                 ) -> dict[str, Any]:
        self._seq += 1
        at = datetime.fromtimestamp(self.clock(), UTC).isoformat()
        return {"id": f"sim-{self._seq}-{task.task_id}-{terminal}-{event}"[:120], "task": task.task_id,
                "terminal": terminal, "event": event, "repeats": repeats, "at": at, "error": error}

    def _queue(self, task: Task) -> None:
        url = self.receipt_url or task.callback
        if not url:
            return
        for t in task.terminals:
            if t in self.offline:
                self.pending.append((url, self._receipt(task, t, "failed", repeats=0, error="offline")))
                continue
            self.pending.append((url, self._receipt(task, t, "started", repeats=0)))
            self.pending.append((url, self._receipt(task, t, "finished", repeats=task.repeat)))

    async def push_receipts(self, *, batch: bool = True) -> list[httpx.Response]:
        """Push what is pending, signed (one push per URL, or one per receipt); returns the answers."""
        todo, self.pending = self.pending, []
        client = self.http or httpx.AsyncClient(timeout=10.0)
        answers = []
        try:
            groups: dict[str, list[dict[str, Any]]] = {}
            for url, r in todo:
                groups.setdefault(url, []).append(r)
            for url, items in groups.items():
                for chunk in ([items] if batch else [[i] for i in items]):
                    answers.append(await self.push(url, {"receipts": chunk}, client=client))
                    self.pushed.extend(chunk)
        finally:
            if self.http is None:
                await client.aclose()
        return answers

    async def push(self, url: str, payload: Any, *, client: httpx.AsyncClient | None = None,
                   secret: str | None = None) -> httpx.Response:
        """One signed push (tests use it to replay a receipt or to sign with a wrong secret)."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", **signed_headers(secret or self.secret, body, now=self.clock())}
        c = client or self.http
        if c is None:
            async with httpx.AsyncClient(timeout=10.0) as own:
                return await own.post(url, content=body, headers=headers)
        return await c.post(url, content=body, headers=headers)

    async def _push_later(self) -> None:
        await asyncio.sleep(self.play_seconds)
        try:
            await self.push_receipts()
        except httpx.HTTPError as exc:
            print(f"broadcast simulator: receipts not delivered: {exc!r}")


async def _serve(args: argparse.Namespace) -> None:
    sim = BroadcastSimulator(secret=args.secret, receipt_url=args.receipts_url,
                             offline={t for t in args.offline.split(",") if t}, auto_push=True,
                             play_seconds=args.play_seconds)
    url = await sim.start(args.host, args.port)
    print(f"broadcast simulator: BROADCAST_PLATFORM_URL={url} (off line: {sorted(sim.offline) or 'none'})")
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()


def main() -> None:
    p = argparse.ArgumentParser(description="A local 应急广播 platform for tests and the demo.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=19700)
    p.add_argument("--secret", required=True, help="the shared secret (BROADCAST_SECRET)")
    p.add_argument("--receipts-url", default=None, help="where receipts go (default: each request's callbackUrl)")
    p.add_argument("--offline", default="", help="platform ids of terminals that are off line, comma separated")
    p.add_argument("--play-seconds", type=float, default=2.0, help="how long a play takes before its receipts")
    try:
        asyncio.run(_serve(p.parse_args()))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
