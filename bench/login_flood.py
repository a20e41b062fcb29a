"""Acknowledgments while people hammer the login with wrong passwords (issue 11: argon2 off the event loop).

    python -m bench.login_flood [--database-url sqlite:///tmp/ws_bench_login.db] [--clients 16] [--seconds 8]

Serves the app with uvicorn (one worker, no in-process scheduler) in a subprocess and drives it from this
process with asyncio + httpx: first acknowledgments alone (idle), then the same while `--clients` clients
post wrong passwords as fast as they are answered — once with the default throttle (most are refused with
429 before any hashing) and once with the throttle set out of reach, so every attempt really runs argon2.
Prints p50/p95 of the acknowledgment and login answers and the ratio to idle (target: p50 ≤ 2× idle).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import select
from warning_service.acknowledgment.tokens import link_key, make_token

from warning_service.actor import Actor
from warning_service.auth.service import create_user
from warning_service.clock import utcnow
from warning_service.config import Settings
from warning_service.db import Database
from warning_service.early_warning import service as warnings
from warning_service.early_warning.models import WarningCreate
from warning_service.early_warning.policy import load_policy
from warning_service.migrate import upgrade
from warning_service.notice.models import Notice
from warning_service.person import service as people
from warning_service.person.models import PersonCreate
from warning_service.region import service as regions
from warning_service.region.models import Region

SECRET = "bench-secret-key-0123456789-0123456789"
TREE = ("code,name,level,parent_code\n33,浙江省,province,\n3310,台州市,city,33\n331081,温岭市,county,3310\n"
        "331081001,太平街道,town,331081\n331081001001,横湖村,village,331081001\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _prepare(url: str, settings: Settings) -> list[str]:
    """One county, 200 responsible persons, one user, one warning: the link tokens of its notices."""
    await asyncio.to_thread(upgrade, url)
    db = Database(settings.async_database_url)
    now = utcnow()
    try:
        async with db.session() as s:
            await regions.import_csv(s, path="tree.csv", raw=TREE.encode())
            await regions.add_grids(s, per_village=99)
            grids = (await s.execute(select(Region.code).where(Region.level == "grid"))).scalars().all()
            for i, code in enumerate(grids):
                await people.create(s, data=PersonCreate(region_code=code, name=f"人员{i}",
                                                         role="grid_responsible", phone=f"1390000{i:04d}"), now=now)
            await create_user(s, username="duty", password="right-password-1", role="duty_officer",
                              region_code="331081", now=now)
        async with db.session() as s:
            res = await warnings.issue_warning(
                s, data=WarningCreate(hazard="typhoon", level="red", description="bench", targets=["331081"]),
                actor=Actor(name="bench", scope_path="/33/", scope_code="33"), policy=load_policy(None),
                settings=settings, now=now)
            ids = (await s.execute(select(Notice.id).where(Notice.warning_id == res.warning.id))).scalars().all()
    finally:
        await db.dispose()
    key = link_key(SECRET)
    return [make_token(i, key=key) for i in ids]


async def _acks(base: str, tokens: list[str], seconds: float) -> list[float]:
    out: list[float] = []
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        i = 0
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            r = await c.post(f"/a/{tokens[i % len(tokens)]}", headers={"Accept": "application/json"})
            out.append((time.perf_counter() - t0) * 1000)
            assert r.status_code in (200, 409, 410), r.text
            i += 1
            await asyncio.sleep(0.02)
    return out


async def _flood(base: str, clients: int, stop: asyncio.Event, codes: dict[int, int], lat: list[float]) -> None:
    async def one(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            k = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                r = await c.post("/api/v1/auth/token", data={"username": "duty" if n % 2 else f"nobody{n}-{k}",
                                                             "password": f"wrong-{k}"})
                lat.append((time.perf_counter() - t0) * 1000)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
                k += 1

    await asyncio.gather(*(one(n) for n in range(clients)))


def _serve(url: str, port: int, env_extra: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET, "ENVIRONMENT": "test",
           "RUN_WORKER_IN_PROCESS": "false", "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "LOG_LEVEL": "WARNING",
           **env_extra}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "warning_service.main:create_app", "--factory",
                             "--port", str(port), "--log-level", "warning"], env=env)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("server did not start within 30 s")


def _p(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1] if len(xs) > 2 else (xs[0] if xs else float("nan"))


async def _scenario(name: str, url: str, tokens: list[str], clients: int, seconds: float,
                    env_extra: dict[str, str], idle_p50: float | None) -> float:
    port = _free_port()
    proc = _serve(url, port, env_extra)
    base = f"http://127.0.0.1:{port}"
    try:
        await _acks(base, tokens, 1.0)  # warm-up
        codes: dict[int, int] = {}
        login_lat: list[float] = []
        stop = asyncio.Event()
        flood = asyncio.create_task(_flood(base, clients, stop, codes, login_lat)) if clients else None
        await asyncio.sleep(0.5 if clients else 0)
        acks = await _acks(base, tokens, seconds)
        stop.set()
        if flood:
            await flood
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    p50 = statistics.median(acks)
    ratio = f"  ×{p50 / idle_p50:.2f} of idle" if idle_p50 else ""
    print(f"{name:<34} ack p50 {p50:7.1f} ms  p95 {_p(acks, 95):7.1f} ms  n={len(acks):4d}{ratio}")
    if clients:
        by_code = ", ".join(f"{k}×{v}" for k, v in sorted(codes.items()))
        print(f"{'':<34} logins: {sum(codes.values())} answered ({by_code}), "
              f"p50 {statistics.median(login_lat):.0f} ms")
    return p50


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="sqlite:////tmp/ws_bench_login.db")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    if args.database_url.startswith("sqlite:///"):
        await asyncio.to_thread(Path(args.database_url.removeprefix("sqlite:///")).unlink, missing_ok=True)
    settings = Settings(_env_file=None, database_url=args.database_url, secret_key=SECRET,  # type: ignore[call-arg]
                        environment="test")
    tokens = await _prepare(args.database_url, settings)
    print(f"{len(tokens)} notices; {args.clients} clients posting wrong passwords; {os.cpu_count()} CPUs shared")
    idle = await _scenario("idle", args.database_url, tokens, 0, args.seconds, {}, None)
    await _scenario(f"{args.clients} clients, default throttle", args.database_url, tokens, args.clients,
                    args.seconds, {}, idle)
    await _scenario(f"{args.clients} clients, throttle out of reach", args.database_url, tokens, args.clients,
                    args.seconds, {"LOGIN_FAILURES_PER_USERNAME": "1000000", "LOGIN_FAILURES_PER_ADDRESS": "1000000"},
                    idle)


if __name__ == "__main__":
    asyncio.run(main())
