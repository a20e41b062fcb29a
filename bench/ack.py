"""Acknowledgment throughput over HTTP: the link endpoint and the signed SMS-reply webhook, on PostgreSQL.

    python -m bench.ack [--database-url postgresql://postgres@127.0.0.1:5432/ws_bench_ack] [--workers 2]
                        [--duration 15] [--connections 16] [--threads 1] [--only link|sms]

Builds (once) the Zhejiang data set and a province-wide red typhoon warning (~130,000 notices), resets
every answer to it, then serves the app with uvicorn (the `warning-service serve` app, several workers,
no in-process scheduler) and drives it from a second process, wrk, with Lua scripts that cycle through
distinct notices — every request is a first answer, the expensive case:
- link: `POST /a/{token}` with `Accept: application/json`;
- sms:  `POST /webhooks/twilio/sms` form-encoded `Body=1` from each person's phone, each request carrying
  an X-Twilio-Signature computed beforehand over PUBLIC_BASE_URL + path.
Afterwards the database is checked: one acknowledgment per answered notice, none twice.
Targets: link ≥ 1,000/s with p99 < 100 ms; sms ≥ 500/s.

The machine's CPUs are shared with whatever else runs, so besides the rate it prints the CPU time the
server workers, this database's PostgreSQL processes and wrk spent per request, and the rate that implies
with the CPUs to themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from bench.zhejiang import ensure_zhejiang
from warning_service.actor import Actor
from warning_service.clock import utcnow
from warning_service.config import Settings, async_database_url
from warning_service.db import Database
from warning_service.early_warning.models import EarlyWarning, Hazard, Level, WarningCreate
from warning_service.early_warning.policy import load_policy
from warning_service.early_warning.service import issue_warning
from warning_service.notice.tokens import link_key, make_token

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/ws_bench_ack"
MARK = "bench.ack 浙江全省台风红色预警"
SECRET = "bench-ack-secret-key-0123456789-for-production"  # production wants ≥ 32 characters
TWILIO_TOKEN = "bench-twilio-auth-token"
TARGETS = {"link": 1_000.0, "sms": 500.0}

LUA = r"""
-- Cycles through the lines of a data file; each wrk thread starts at its own offset.
local lines = {}
local counter = 0
local threads = {}
local n = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do lines[#lines + 1] = line end
  n = math.floor(#lines / tonumber(args[2])) * id
end

function request()
  n = n + 1
  local line = lines[(n % #lines) + 1]
  REQUEST
end

function done(summary, latency, requests)
  io.write(string.format(
    "RESULT {\"requests\": %d, \"duration_us\": %d, \"connect_errors\": %d, \"read_errors\": %d, " ..
    "\"write_errors\": %d, \"status_errors\": %d, \"timeouts\": %d, \"p50_us\": %d, \"p90_us\": %d, " ..
    "\"p99_us\": %d, \"max_us\": %d}\n",
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""
LINK_REQUEST = ('return wrk.format("POST", "/a/" .. line, {["Accept"] = "application/json", '
                '["Content-Type"] = "application/json"}, "{}")')
SMS_REQUEST = ('local tab = string.find(line, "\\t")\n'
               '  return wrk.format("POST", "/webhooks/twilio/sms", {["Content-Type"] = '
               '"application/x-www-form-urlencoded", ["X-Twilio-Signature"] = string.sub(line, tab + 1)}, '
               'string.sub(line, 1, tab - 1))')


async def prepare(url: str, settings: Settings) -> tuple[int, list[tuple[int, str | None]]]:
    """The bench warning (issued once) with every answer to it undone; returns its notices and phones."""
    await ensure_zhejiang(url)
    db = Database(async_database_url(url))
    try:
        async with db.session() as s:
            wid = (await s.execute(select(EarlyWarning.id).where(EarlyWarning.title == MARK))).scalar()
            if wid is None:
                actor = Actor(name="user:zj_duty", scope_path="/33/", scope_code="33")
                data = WarningCreate(hazard=Hazard.typhoon, level=Level.red, targets=["33"], title=MARK,
                                     description="台风“烟花”预计今夜在浙江沿海登陆,最大风力14级。")
                res = await issue_warning(s, data=data, actor=actor, policy=load_policy(None),
                                          settings=settings, now=utcnow())
                wid = res.warning.id
                print(f"issued bench warning {wid}: {res.recipient_count} notices", flush=True)
        async with db.session() as s:
            # Other warnings would change which notice a bare "1" means; this bench owns the database.
            await s.execute(text("UPDATE early_warning SET state = 'active', lifted_at = NULL WHERE id = :w"),
                            {"w": wid})
            await s.execute(text("DELETE FROM notice_feedback WHERE notice_id IN "
                                 "(SELECT id FROM notice WHERE warning_id = :w)"), {"w": wid})
            await s.execute(text("DELETE FROM acknowledgment WHERE warning_id = :w"), {"w": wid})
            # The replies' MessageSids are the same every run: left in place, a second run's replies are all
            # replays, refused at the first statement (a rate that measures nothing).
            await s.execute(text("DELETE FROM inbound_event WHERE kind = 'sms_reply'"))
            await s.execute(text("DELETE FROM ledger_pending "
                                 "WHERE action IN ('ack.recorded', 'feedback.recorded')"))
            await s.execute(text("UPDATE notice SET state = 'pending', acknowledged_at = NULL, "
                                 "step = 'initial', deadline = :d, next_action_at = NULL "
                                 "WHERE warning_id = :w"),
                            {"w": wid, "d": utcnow() + timedelta(hours=2)})
            rows = (await s.execute(text(
                "SELECT n.id, p.phone FROM notice n JOIN person p ON p.id = n.person_id "
                "WHERE n.warning_id = :w AND n.reason = 'primary' AND n.requires_ack ORDER BY n.id"),
                {"w": wid})).all()
        return wid, [(r[0], r[1]) for r in rows]
    finally:
        await db.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(url: str, port: int, workers: int) -> tuple[subprocess.Popen[bytes], list[str], dict[str, str]]:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET, "ENVIRONMENT": "production",
           "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
           "RUN_WORKER_IN_PROCESS": "false", "LOG_LEVEL": "WARNING", "REDIS_URL": ""}
    cmd = [str(Path(sys.executable).with_name("uvicorn")), "--factory", "warning_service.main:create_app",
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log",
           "--log-level", "warning", "--loop", "uvloop", "--http", "httptools"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc, cmd, env
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(") ", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(") ", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return out


def _postgres_pids(database: str) -> list[int]:
    """This database's backends and PostgreSQL's own background processes (WAL writer, checkpointer…)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("postgres: ") and (f" {database} " in cmd or cmd.count(":") <= 2):
            out.append(int(entry))
    return out


class CpuMeter:
    """CPU seconds used by the server's workers, this database's PostgreSQL processes and wrk, over a run.

    On a machine shared with other work the request rate says little by itself; CPU per request does.
    """

    def __init__(self, server_pid: int, database: str) -> None:
        self.server_pid, self.database = server_pid, database

    def snapshot(self) -> dict[str, Any]:
        import resource

        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {"server": {p: _cpu_seconds(p) for p in [self.server_pid, *_children(self.server_pid)]},
                "postgres": {p: _cpu_seconds(p) for p in _postgres_pids(self.database)},
                "wrk": usage.ru_utime + usage.ru_stime, "load": os.getloadavg()[0]}

    @staticmethod
    def used(before: dict[str, Any], after: dict[str, Any], key: str) -> float:
        """CPU used meanwhile by processes alive at the end (one that exited mid-run is not counted)."""
        if key == "wrk":
            return after[key] - before[key]
        return sum(max(0.0, cpu - before[key].get(pid, 0.0)) for pid, cpu in after[key].items())


def run_wrk(port: int, script: Path, data: Path, *, threads: int, connections: int, duration: int,
            meter: CpuMeter) -> tuple[dict[str, float], list[str]]:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "-s", str(script),
           f"http://127.0.0.1:{port}", "--", str(data), str(threads)]
    before = meter.snapshot()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = meter.snapshot()
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    for k in ("server", "postgres", "wrk"):
        result[f"cpu_{k}_s"] = CpuMeter.used(before, after, k)
    result["load"] = after["load"]
    return result, cmd


async def answered(url: str, warning_id: int, path: str) -> tuple[int, int]:
    """(acknowledgments by this path, notices answered more than once in a round)."""
    db = Database(async_database_url(url))
    try:
        async with db.session() as s:
            n = (await s.execute(text("SELECT count(*) FROM acknowledgment "
                                      "WHERE warning_id = :w AND path = :p"),
                                 {"w": warning_id, "p": path})).scalar_one()
            dup = (await s.execute(text("SELECT count(*) FROM (SELECT notice_id, round FROM acknowledgment "
                                        "WHERE warning_id = :w GROUP BY 1, 2 HAVING count(*) > 1) d"),
                                   {"w": warning_id})).scalar_one()
        return n, dup
    finally:
        await db.dispose()


def report(name: str, r: dict[str, float], wrk_cmd: list[str], server_cmd: list[str], recorded: int,
           duplicates: int) -> bool:
    rate = r["requests"] / (r["duration_us"] / 1e6)
    errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["status_errors"] + r["timeouts"]
    target = TARGETS[name]
    ok = rate >= target and errors == 0 and duplicates == 0 and (name != "link" or r["p99_us"] < 100_000)
    print(f"\n== {name}: {rate:,.0f} acknowledgments/s  (target ≥ {target:,.0f}/s"
          f"{', p99 < 100 ms' if name == 'link' else ''})  {'OK' if ok else 'BELOW TARGET'}")
    print(f"   requests {r['requests']:,}  errors {errors}  latency p50 {r['p50_us'] / 1000:.1f} ms  "
          f"p90 {r['p90_us'] / 1000:.1f} ms  p99 {r['p99_us'] / 1000:.1f} ms  "
          f"max {r['max_us'] / 1000:.1f} ms")
    print(f"   database: {recorded:,} acknowledgments recorded by this path, "
          f"{duplicates} notices answered twice")
    n = max(r["requests"], 1)
    per = {k: r[f"cpu_{k}_s"] / n * 1000 for k in ("server", "postgres", "wrk")}
    total = sum(per.values())
    cpus = os.cpu_count() or 1
    print(f"   CPU per request: server {per['server']:.2f} ms + PostgreSQL {per['postgres']:.2f} ms + wrk "
          f"{per['wrk']:.2f} ms = {total:.2f} ms; this run used {sum(r[f'cpu_{k}_s'] for k in per):.1f} of "
          f"{cpus * r['duration_us'] / 1e6:.1f} CPU-seconds (load average {r['load']:.1f})")
    print(f"   → with the {cpus} CPUs to itself this path would sustain ≈ {cpus * 1000 / total:,.0f}/s")
    print(f"   load:   {shlex.join(wrk_cmd)}")
    print(f"   server: {shlex.join(server_cmd)}")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=DEFAULT_URL)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--duration", type=int, default=15)
    # 16 open connections keep both CPUs busy; more only lengthen the queue (p99), not the rate.
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=["link", "sms"])
    args = ap.parse_args()

    port = _free_port()
    settings = Settings(_env_file=None, database_url=args.database_url, secret_key=SECRET,  # type: ignore[call-arg]
                        public_base_url=f"http://127.0.0.1:{port}")
    warning_id, notices = asyncio.run(prepare(args.database_url, settings))
    half = len(notices) // 2
    OUT.mkdir(parents=True, exist_ok=True)
    key = link_key(SECRET)
    link_data = OUT / "ack-link-tokens.txt"
    link_data.write_text("".join(make_token(nid, key=key) + "\n" for nid, _ in notices[:half]))
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(TWILIO_TOKEN)
    sms_url = settings.public_base_url + "/webhooks/twilio/sms"
    lines = []
    for i, (_, phone) in enumerate(notices[half:]):
        if not phone:
            continue
        form = {"From": phone, "To": "+15005550006", "Body": "1", "MessageSid": f"SM{i:032d}"}
        lines.append(f"{urllib.parse.urlencode(form)}\t{validator.compute_signature(sms_url, form)}\n")
    sms_data = OUT / "ack-sms-bodies.txt"
    sms_data.write_text("".join(lines))
    (OUT / "ack-link.lua").write_text(LUA.replace("REQUEST", LINK_REQUEST))
    (OUT / "ack-sms.lua").write_text(LUA.replace("REQUEST", SMS_REQUEST))
    print(f"bench warning {warning_id}: {len(notices):,} notices; {half:,} link tokens, {len(lines):,} SMS "
          f"replies prepared; {os.cpu_count()} CPUs shared by server, PostgreSQL and wrk", flush=True)

    proc, server_cmd, _ = serve(args.database_url, port, args.workers)
    db_name = args.database_url.rsplit("/", 1)[1]
    ok = True
    try:
        runs = (("link", OUT / "ack-link.lua", link_data), ("sms", OUT / "ack-sms.lua", sms_data))
        for name, script, data in runs:
            if args.only and args.only != name:
                continue
            result, wrk_cmd = run_wrk(port, script, data, threads=args.threads, connections=args.connections,
                                      duration=args.duration, meter=CpuMeter(proc.pid, db_name))
            recorded, duplicates = asyncio.run(answered(args.database_url, warning_id,
                                                        "link" if name == "link" else "sms_reply"))
            ok = report(name, result, wrk_cmd, server_cmd, recorded, duplicates) and ok
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
