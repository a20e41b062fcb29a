"""Heavy reads against answers: a province XLSX export and a grid-level report while `/healthz` and
acknowledgment links (`POST /a/{token}`) are driven at the same API process, from other processes.

    python -m bench.heavy_reads [--database-url postgresql://postgres@127.0.0.1:5432/ws_exports]
                                [--divisions PATH] [--modes idle,after | --only idle|before|after]
                                [--loads paced,saturated] [--link-rate 400] [--healthz-rate 20]
                                [--export-budget SECONDS]

Modes: "before" (export built inside the request, report on the event loop: the old paths), "after" (the
layout we deploy — docker-compose.yml, the Dockerfile: one API process, `warning-service serve --no-worker`,
and a worker process that builds the export job in a child; the report in the API's process pool), and
"idle": the same load with no heavy read for 30 s — on a shared machine the goals are judged against it too.

Two load models, each mode run under each (`--loads`):
- paced (the one the goals are judged on): open-loop generators in their own processes (`pace`, below)
  send requests on a schedule, whatever the answers' speed, and time each one from when it was due, so a
  stalled server is charged for the requests it kept waiting (no coordinated omission). Link answers arrive
  as a Poisson stream at `--link-rate` (400/s by default: a province's real peak is ~100,000 people
  answering within 10 minutes, ~170/s; more than twice that is asked for); `/healthz` at a fixed 20/s
  (`--healthz-rate`), already several monitors' and load balancers' worth — a probe is every few seconds.
  The load runs 5 s before the heavy reads begin (a warm-up: a freshly started API's first second is slow
  whatever else runs); those requests are printed on their own line and not judged.
- saturated (the old model, kept so the figures stay comparable with earlier runs): wrk, 4 closed-loop
  connections on `/healthz` and 8 on links, each sending its next request as soon as the previous is
  answered. That measures throughput: /healthz alone takes the whole API process (~1,000-1,300/s here) and
  link answers queue behind it, so its latencies say how long a queue is, not what a grid member waits.
  Printed beside the paced figures, not judged.

The links: before each run the bench's own earlier link answers (source 127.0.0.1) are undone, the notices
put back as the played story left them (bench.report's outcome SQL), so every run measures the same thing.
Paced runs answer the notices the story left unanswered (~18,500, shuffled with a fixed seed): first answers,
the expensive case, until they run out (~46 s at 400/s), then the same again — second taps; the printout
says how many of each were sent. The saturated load keeps the old list: every primary notice in id order,
85 % of them already answered in the played story (second answers from the first request on).

Uses the bench.report warning over all of Zhejiang (~129,000 notices; built on first use). Prints, for each
mode and load: the time of the export and of the report, p50/p99/max and rate for `/healthz` and for link
answers, the paced generators' own lateness, the load average, and the peak RSS of the API process (and of
its largest child). Goals: link answers p99 < 100 ms, `/healthz` p99 < 50 ms, API process < 300 MB; exits 1
when a paced run misses one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import uvloop
from sqlalchemy import text

import bench.zhejiang as zhejiang
from bench.ack import LINK_REQUEST, LUA, _free_port
from bench.report import ensure_warning
from warning_service.config import async_database_url
from warning_service.db import Database
from warning_service.notice.tokens import link_key, make_token

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
DEFAULT_URL = os.environ.get("BENCH_HEAVY_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/ws_exports")
SECRET = "bench-heavy-secret-key-0123456789"
GOALS = {"link_p99_ms": 100.0, "healthz_p99_ms": 50.0, "rss_mb": 300.0}
HEALTHZ_REQUEST = 'return wrk.format("GET", "/healthz")'
LOADS = ("paced", "saturated")
BENCH_SOURCE = "127.0.0.1"  # the address the bench's link answers are recorded from
# The played story's rule for a notice left unanswered (bench.report OUTCOME_SQL): timed out, or delivered.
# (Their ledger entries stay: the ledger is append-only, and they say truly what the bench did.)
UNDO_LINK_ANSWERS = """
    WITH undone AS (DELETE FROM acknowledgment WHERE warning_id = :w AND path = 'link' AND source = :src
                    RETURNING notice_id)
    UPDATE notice SET state = CASE WHEN (id::bigint * 104729) % 1000 < 950 THEN 'timed_out' ELSE 'delivered' END,
           acknowledged_at = NULL, next_action_at = NULL, step = 'initial'
    WHERE id IN (SELECT notice_id FROM undone)"""


async def reset(url: str, warning_id: int) -> tuple[int, list[int]]:
    """Before each run: the bench's own link answers undone, and any export an earlier run left unfinished (its
    budget ran out) ended — this run's worker would build it, in the middle of what should be an idle baseline.
    Returns how many notices were put back, and the primary notices left unanswered."""
    db = Database(async_database_url(url))
    try:
        async with db.session() as s:
            await s.execute(text("UPDATE export_job SET state = 'failed', error = 'left by an earlier bench run' "
                                 "WHERE state IN ('queued', 'running')"))
            undone = (await s.execute(text(UNDO_LINK_ANSWERS), {"w": warning_id, "src": BENCH_SOURCE})).rowcount
            open_ids = (await s.execute(text(
                "SELECT id FROM notice WHERE warning_id = :w AND reason = 'primary' AND requires_ack "
                "AND state <> 'acknowledged' ORDER BY id"), {"w": warning_id})).scalars().all()
        return undone, list(open_ids)
    finally:
        await db.dispose()


async def bench_answers(url: str, warning_id: int) -> int:
    db = Database(async_database_url(url))
    try:
        async with db.session() as s:
            return (await s.execute(text("SELECT count(*) FROM acknowledgment WHERE warning_id = :w "
                                         "AND path = 'link' AND source = :src"),
                                    {"w": warning_id, "src": BENCH_SOURCE})).scalar_one()
    finally:
        await db.dispose()


async def prepare(url: str) -> tuple[int, list[int]]:
    await zhejiang.ensure_zhejiang(url)
    db = Database(async_database_url(url))
    try:
        wid = await ensure_warning(db, url, rebuild=False)
        async with db.session() as s:
            # Answers keep the links valid whatever the date of the run.
            await s.execute(text("UPDATE early_warning SET state = 'active', lifted_at = NULL WHERE id = :w"),
                            {"w": wid})
            # Its story is played out: nothing more to chase or send. Reactivated, its silent notices would
            # otherwise start an escalation sweep over the province at the worker's first tick.
            await s.execute(text("UPDATE notice SET next_action_at = NULL WHERE warning_id = :w "
                                 "AND next_action_at IS NOT NULL"), {"w": wid})
            await s.execute(text("UPDATE outbox SET status = 'cancelled' WHERE warning_id = :w AND status = 'queued'"),
                            {"w": wid})
            ids = (await s.execute(text("SELECT id FROM notice WHERE warning_id = :w AND reason = 'primary' "
                                        "AND requires_ack ORDER BY id"), {"w": wid})).scalars().all()
        return wid, list(ids)
    finally:
        await db.dispose()


def serve(url: str, port: int, *, mode: str, export_dir: str) -> list[subprocess.Popen[bytes]]:
    """The API process (first) and, except "before", a worker process beside it, as deployed
    (docker-compose: RUN_WORKER_IN_PROCESS=false and `warning-service worker`)."""
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET, "ENVIRONMENT": "production",
           "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "LOG_LEVEL": "WARNING", "REDIS_URL": "",
           "EXPORT_DIR": export_dir, "RUN_WORKER_IN_PROCESS": "false",
           # The worker has nothing else to do here: no dispatch, escalation or sealing to race.
           "DISPATCH_INTERVAL_SECONDS": "3600", "ESCALATION_TICK_SECONDS": "3600", "EXPORT_POLL_SECONDS": "1"}
    if mode == "before":  # the old paths, for comparison: everything in the API process
        env.update({"EXPORT_DIRECT_MAX_ROWS": str(10**9), "REPORT_OFFLOAD_LEVEL": "never",
                    "RUN_WORKER_IN_PROCESS": "true"})
    cmd = [str(Path(sys.executable).with_name("uvicorn")), "--factory", "warning_service.main:create_app",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-access-log",
           "--log-level", "warning", "--loop", "uvloop", "--http", "httptools"]
    procs = [subprocess.Popen(cmd, env=env, cwd=ROOT)]
    if mode != "before":
        procs.append(subprocess.Popen([sys.executable, "-m", "warning_service.cli", "worker"], env=env, cwd=ROOT,
                                      stdout=subprocess.DEVNULL))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return procs
        except OSError:
            time.sleep(0.3)
    for p in procs:
        p.kill()
    raise SystemExit("server did not start")


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(*pids: int) -> list[int]:
    """Every process below `pids`, from one pass over /proc (a pass per parent cost the bench ~14 % of a core,
    taken from the service it measures)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    children.setdefault(int(f.read().rsplit(") ", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    out, frontier = [], list(pids)
    while frontier:
        kids = children.get(frontier.pop(), [])
        out += kids
        frontier += kids
    return out


class RssSampler(threading.Thread):
    """Peak RSS of the API process (sampled every 100 ms) and of its largest child (every 500 ms)."""

    def __init__(self, pid: int, others: list[int] | None = None) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.child_peak, self.done = pid, 0.0, 0.0, threading.Event()
        self.others = others or []  # the worker process: its export child counts as a child

    def run(self) -> None:
        n = 0
        while not self.done.wait(0.1):
            self.peak = max(self.peak, rss_mb(self.pid))
            n += 1
            if n % 5 == 0:  # children grow over seconds; walking /proc every 100 ms would cost the service
                kids = descendants(self.pid, *self.others)
                self.child_peak = max([self.child_peak, *(rss_mb(c) for c in kids)])


def start_wrk(port: int, script: Path, data: Path, connections: int) -> subprocess.Popen[str]:
    cmd = ["wrk", "-t1", f"-c{connections}", "-d600s", "--timeout", "20s", "-s", str(script),
           f"http://127.0.0.1:{port}", "--", str(data), "1"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_wrk(proc: subprocess.Popen[str]) -> dict[str, Any]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no result: {out}\n{err}")
    return json.loads(line[len("RESULT "):])


# --- the paced load: an open-loop generator in its own process ---------------------------------------------------

MAX_CONNECTIONS = 512  # past these, a due request waits for a free connection, and that wait counts
KEEP_ALIVE_SECONDS = 4.0  # uvicorn closes a connection idle for 5 s: one idle longer is not reused


def start_pacer(port: int, *, method: str, prefix: str, data: Path, rate: float,
                poisson: bool, warmup: float) -> subprocess.Popen[str]:
    """`pace` in a process of its own (this module, `--pace`), stopped and read like wrk (`stop_wrk`)."""
    spec = {"port": port, "method": method, "prefix": prefix, "data": str(data), "rate": rate, "poisson": poisson,
            "warmup": warmup}
    return subprocess.Popen([sys.executable, "-m", "bench.heavy_reads", "--pace", json.dumps(spec)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def pace(*, port: int, method: str, prefix: str, lines: list[str], rate: float,
               poisson: bool, warmup: float = 0.0) -> dict[str, Any]:
    """Send `method prefix+line` (one of `lines` each, in turn) at `rate` per second until SIGINT: Poisson
    arrivals (independent people) or a fixed interval (a monitor). Each request is timed from when it was due;
    keep-alive connections are reused, opened as needed. Returns wrk's RESULT fields, plus how late the
    generator itself sent (it shares the machine: a late generator would show there, not as the service).
    Requests due in the first `warmup` seconds are reported apart (`warmup_*`), not in the main figures."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    rng = random.Random(17)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    latencies: list[float] = []
    warming: list[float] = []  # due before the warm-up ended: the freshly started processes' first requests
    by_second: dict[int, list[float]] = {}  # by the second it was due in, from the start: when it went wrong
    lateness: list[float] = []
    errors = {"connect_errors": 0, "read_errors": 0, "write_errors": 0, "status_errors": 0, "timeouts": 0}
    body = b"{}" if method == "POST" else b""
    extra = (b"Content-Type: application/json\r\nContent-Length: 2\r\n" if body else b"")

    async def connection() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while idle:
            reader, writer, since = idle.pop()
            if loop.time() - since < KEEP_ALIVE_SECONDS and not reader.at_eof():
                return reader, writer
            writer.close()
        return await asyncio.open_connection("127.0.0.1", port)

    async def one(due: float, line: str) -> None:
        lateness.append(loop.time() - due)  # the generator's own delay, before any wait for a connection
        async with slots:
            try:
                reader, writer = await connection()
            except OSError:
                errors["connect_errors"] += 1
                return
            try:
                writer.write(f"{method} {prefix}{line} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
                             + b"Accept: application/json\r\n" + extra + b"\r\n" + body)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
                length = next(int(h.split(b":", 1)[1]) for h in head.split(b"\r\n")
                              if h.lower().startswith(b"content-length:"))
                await asyncio.wait_for(reader.readexactly(length), 20)
            except TimeoutError:
                errors["timeouts"] += 1
                writer.close()
                return
            except (OSError, asyncio.IncompleteReadError, StopIteration, ValueError):
                errors["read_errors"] += 1
                writer.close()
                return
            took = loop.time() - due
            (warming if due - start < warmup else latencies).append(took)
            by_second.setdefault(int(due - start), []).append(took)
            if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.1 3")):
                errors["status_errors"] += 1
            idle.append((reader, writer, loop.time()))

    tasks: set[asyncio.Task[None]] = set()
    start = due = loop.time()
    n = 0
    while not stop.is_set():
        due += rng.expovariate(rate) if poisson else 1 / rate
        delay = due - loop.time()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), delay)
                break
            except TimeoutError:
                pass
        task = asyncio.create_task(one(due, lines[n % len(lines)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    duration = loop.time() - start
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    latencies.sort()
    warming.sort()
    lateness.sort()

    def pct(xs: list[float], q: float) -> int:
        return int(xs[min(len(xs) - 1, int(q / 100 * len(xs)))] * 1e6) if xs else 0

    seconds = {t: sorted(xs) for t, xs in by_second.items()}
    worst = sorted(seconds, key=lambda t: pct(seconds[t], 99), reverse=True)[:3]
    return {"requests": len(latencies) + len(warming), "sent": n, "duration_us": int(duration * 1e6),
            "target_rate": rate,
            "worst_seconds": [[t, pct(seconds[t], 99)] for t in sorted(worst)],
            "p50_us": pct(latencies, 50), "p90_us": pct(latencies, 90), "p99_us": pct(latencies, 99),
            "max_us": int(latencies[-1] * 1e6) if latencies else 0, "late_p99_us": pct(lateness, 99),
            "late_max_us": int(lateness[-1] * 1e6) if lateness else 0, "warmup_requests": len(warming),
            "warmup_p99_us": pct(warming, 99), "warmup_max_us": int(warming[-1] * 1e6) if warming else 0, **errors}


def pace_main(spec: str) -> None:
    kw = json.loads(spec)
    lines = Path(kw.pop("data")).read_text().split()
    result = uvloop.run(pace(**kw, lines=lines))  # uvloop: the generator's own loop costs less of the shared CPUs
    print("RESULT " + json.dumps(result), flush=True)


# --- the heavy reads ----------------------------------------------------------------------------------------------

async def heavy(port: int, warning_id: int, mode: str, budget: float) -> dict[str, float]:
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=900) as c:
        r = await c.post("/api/v1/auth/token", data={"username": "zj_audit", "password": "bench-password"})
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}

        async def export() -> dict[str, float]:
            t0 = time.perf_counter()
            size = 0
            if mode == "before":
                async with c.stream("GET", f"/api/v1/reports/warnings/{warning_id}.xlsx", headers=h) as resp:
                    resp.raise_for_status()
                    async for chunk in resp.aiter_bytes():
                        size += len(chunk)
                return {"export_s": time.perf_counter() - t0, "export_mb": size / 1e6}
            job = (await c.post(f"/api/v1/reports/warnings/{warning_id}/exports", headers=h,
                                params={"format": "xlsx"})).json()
            deadline = time.monotonic() + budget
            while job["state"] in ("queued", "running") and time.monotonic() < deadline:
                await asyncio.sleep(1)
                job = (await c.get(f"/api/v1/reports/exports/{job['id']}", headers=h)).json()
            if job["state"] in ("queued", "running"):  # the budget ran out: the latencies so far still count
                return {"export_s": time.perf_counter() - t0, "export_mb": 0.0,
                        "export_percent": float(job.get("percent") or 0)}
            if job["state"] != "done":
                raise SystemExit(f"export job ended {job['state']}: {job.get('error')}")
            built = time.perf_counter() - t0
            async with c.stream("GET", job["download_url"], headers=h) as resp:
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
            return {"export_s": built, "export_mb": size / 1e6, "download_s": time.perf_counter() - t0 - built}

        async def report() -> dict[str, float]:
            t0 = time.perf_counter()
            resp = await c.get(f"/api/v1/reports/warnings/{warning_id}", headers=h,
                               params={"rollup": "grid", "nodes_limit": 10000})
            resp.raise_for_status()
            body = resp.json()
            return {"report_s": time.perf_counter() - t0, "report_mb": len(resp.content) / 1e6,
                    "report_nodes": body["rollup"]["nodes_total"]}

        # The report starts a few seconds into the export, as a second auditor would.
        async def later_report() -> dict[str, float]:
            await asyncio.sleep(5)
            return await report()

        a, b = await asyncio.gather(export(), later_report())
        return {**a, **b}


IDLE_SECONDS = 30.0
# The paced load runs this long before the heavy reads (or the idle wait) begin, and its requests are shown apart:
# a freshly started API's first second of 400 answers/s (its connections, caches and the generators' own
# connections opening) had a p99 of 200–300 ms with nothing else running, in every mode. The goals are about
# answers while heavy reads run; the warm-up's figures are printed beside them, not hidden.
WARMUP_SECONDS = 5.0


def without_heavy_reads(seconds: float) -> dict[str, float]:
    time.sleep(seconds)
    return {}


def loadavg() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run_mode(url: str, mode: str, load: str, warning_id: int, budget: float, *, link_rate: float,
             healthz_rate: float) -> dict[str, Any]:
    undone, open_ids = asyncio.run(reset(url, warning_id))
    key = link_key(SECRET)
    if load == "paced":
        random.Random(17).shuffle(open_ids)
        link_data = OUT / "heavy-link-first-answers.txt"
        link_data.write_text("".join(make_token(nid, key=key) + "\n" for nid in open_ids))
    else:
        link_data = OUT / "heavy-link-tokens.txt"  # the old list (main)
    health_data = OUT / "heavy-healthz.txt"
    port = _free_port()
    before = loadavg()
    with tempfile.TemporaryDirectory(prefix="heavy-exports-") as export_dir:
        procs = serve(url, port, mode=mode, export_dir=export_dir)
        proc = procs[0]
        sampler = RssSampler(proc.pid, [p.pid for p in procs[1:]])
        try:
            time.sleep(2)
            idle = rss_mb(proc.pid)
            sampler.start()
            if load == "paced":
                health = start_pacer(port, method="GET", prefix="/", data=health_data, rate=healthz_rate,
                                     poisson=False, warmup=WARMUP_SECONDS)
                link = start_pacer(port, method="POST", prefix="/a/", data=link_data, rate=link_rate, poisson=True,
                                   warmup=WARMUP_SECONDS)
            else:
                health = start_wrk(port, OUT / "heavy-healthz.lua", health_data, 4)
                link = start_wrk(port, OUT / "heavy-link.lua", link_data, 8)
            lead = WARMUP_SECONDS if load == "paced" else 2.0
            time.sleep(lead)
            started = time.time() - lead  # the load's start, on the wall clock: to read other logs against
            # "idle": the same load with no heavy read, the machine's own baseline (it is shared).
            figures = (asyncio.run(heavy(port, warning_id, mode, budget)) if mode != "idle"
                       else without_heavy_reads(IDLE_SECONDS))
            time.sleep(1)
            h, ln = stop_wrk(health), stop_wrk(link)
            sampler.done.set()
            sampler.join()
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=60)
    first = asyncio.run(bench_answers(url, warning_id))
    return {"mode": mode, "load": load, "idle_rss_mb": idle, "peak_rss_mb": sampler.peak,
            "child_peak_rss_mb": sampler.child_peak, "healthz": h, "link": ln, "first_answers": first,
            "open_notices": len(open_ids), "undone": undone, "loadavg": (before, loadavg()),
            "started": started, **figures}


def show(r: dict[str, Any]) -> bool:
    def lat(w: dict[str, Any]) -> str:
        rate = w["requests"] / (w["duration_us"] / 1e6)
        errors = w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["status_errors"] + w["timeouts"]
        asked = f" (asked {w['target_rate']:,.0f}/s)" if "target_rate" in w else ""
        return (f"{rate:7,.0f} req/s{asked}  p50 {w['p50_us'] / 1000:7.1f} ms  p99 {w['p99_us'] / 1000:8.1f} ms  "
                f"max {w['max_us'] / 1000:8.1f} ms  errors {errors}")

    ok = (r["link"]["p99_us"] / 1000 < GOALS["link_p99_ms"] and r["healthz"]["p99_us"] / 1000 < GOALS["healthz_p99_ms"]
          and r["peak_rss_mb"] < GOALS["rss_mb"])
    where = {"before": "export built in the request, report on the event loop",
             "after": "export job built by the worker process in a child, report in the API's process pool",
             "idle": f"no heavy read: the same load alone for {IDLE_SECONDS:.0f} s (the machine's baseline)"}
    how = {"paced": "paced: open-loop, links as a Poisson stream, /healthz at a fixed rate, timed from when due",
           "saturated": "saturated (the old model): wrk, 4 + 8 closed-loop connections — throughput, not judged"}
    print(f"\n== {r['mode']}: {where[r['mode']]}\n   load: {how[r['load']]}; load average {r['loadavg'][0]} → "
          f"{r['loadavg'][1]}")
    if "export_s" in r:
        if "export_percent" in r:
            print(f"   province XLSX export NOT DONE after {r['export_s']:.0f} s ({r['export_percent']:.0f} % written; "
                  "the latencies below are those while it ran)")
        else:
            print(f"   province XLSX export {r['export_s']:6.1f} s ({r['export_mb']:.1f} MB)"
                  + (f", download {r['download_s']:.1f} s" if "download_s" in r else ""))
        print(f"   grid-level report    {r['report_s']:6.1f} s ({r['report_nodes']:,} nodes, first page "
              f"{r['report_mb']:.1f} MB of JSON)")
    print(f"   /healthz      {lat(r['healthz'])}   goal p99 < {GOALS['healthz_p99_ms']:.0f} ms")
    print(f"   link answers  {lat(r['link'])}   goal p99 < {GOALS['link_p99_ms']:.0f} ms")
    if r["link"].get("warmup_requests"):
        print(f"   warm-up (the load's first {WARMUP_SECONDS:.0f} s, before the heavy reads; not judged): link answers "
              f"p99 {r['link']['warmup_p99_us'] / 1000:,.1f} ms, max {r['link']['warmup_max_us'] / 1000:,.1f} ms; "
              f"/healthz p99 {r['healthz']['warmup_p99_us'] / 1000:,.1f} ms")
    if r["link"].get("worst_seconds"):
        at = time.strftime("%H:%M:%S", time.localtime(r["started"]))
        print(f"                 worst seconds (from the load's start, {at}): " + ", ".join(
            f"+{t} s p99 {us / 1000:,.0f} ms" for t, us in r["link"]["worst_seconds"]))
    answered = r["link"]["requests"]  # requests that got an answer before the generator stopped
    unanswered = r["link"].get("sent", answered) - answered
    print(f"                 {r['first_answers']:,} first answers recorded, {max(answered - r['first_answers'], 0):,} "
          f"second answers ({r['open_notices']:,} notices were unanswered at the start"
          + (f"; {unanswered:,} requests still unanswered when the load stopped" if unanswered > 0 else "") + ")")
    if r["load"] == "paced":
        late = max(r["healthz"]["late_p99_us"], r["link"]["late_p99_us"]) / 1000
        print(f"   generators' own lateness p99 {late:.1f} ms (included in the figures above; a wait for one of "
              f"{MAX_CONNECTIONS} connections is not lateness but the service's queue)")
    print(f"   API process RSS: idle {r['idle_rss_mb']:.0f} MB, peak {r['peak_rss_mb']:.0f} MB (goal < "
          f"{GOALS['rss_mb']:.0f} MB); largest child (report pool, export) peak {r['child_peak_rss_mb']:.0f} MB")
    if r["load"] == "paced":
        print(f"   goals {'met' if ok else 'MISSED'}")
        return ok
    print(f"   goals (not judged under this load) {'would be met' if ok else 'would be missed'}")
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=DEFAULT_URL)
    ap.add_argument("--divisions", type=Path, default=zhejiang.DIVISIONS,
                    help="zhejiang-divisions.csv (only read when the province is not built yet)")
    ap.add_argument("--only", choices=["idle", "before", "after"])
    ap.add_argument("--export-budget", type=float, default=900.0,
                    help="seconds to wait for the export job; past them the figures are those measured while it ran")
    ap.add_argument("--modes", default="idle,after",
                    help="comma-separated, in order, from idle, before, after (default idle,after: 'before' is the "
                         "old in-request path, minutes long)")
    ap.add_argument("--loads", default=",".join(LOADS),
                    help="comma-separated, from paced (judged against the goals) and saturated (the old wrk model)")
    ap.add_argument("--link-rate", type=float, default=400.0, help="link answers per second, paced (Poisson)")
    ap.add_argument("--healthz-rate", type=float, default=20.0, help="/healthz per second, paced (fixed interval)")
    ap.add_argument("--pace", help=argparse.SUPPRESS)  # internal: run one paced generator (start_pacer)
    args = ap.parse_args()
    if args.pace:
        pace_main(args.pace)
        return
    zhejiang.DIVISIONS = args.divisions
    warning_id, notices = asyncio.run(prepare(args.database_url))
    OUT.mkdir(parents=True, exist_ok=True)
    key = link_key(SECRET)
    (OUT / "heavy-link-tokens.txt").write_text("".join(make_token(nid, key=key) + "\n" for nid in notices))
    (OUT / "heavy-healthz.txt").write_text("healthz\n")
    (OUT / "heavy-link.lua").write_text(LUA.replace("REQUEST", LINK_REQUEST))
    (OUT / "heavy-healthz.lua").write_text(LUA.replace("REQUEST", HEALTHZ_REQUEST))
    print(f"warning {warning_id}: {len(notices):,} notices to answer by link; {os.cpu_count()} CPUs "
          f"(load average {loadavg()}) shared by the API, its children, PostgreSQL and the load generators",
          flush=True)
    ok = True
    for mode in [args.only] if args.only else args.modes.split(","):
        for load in args.loads.split(","):
            ok = show(run_mode(args.database_url, mode, load, warning_id, args.export_budget,
                               link_rate=args.link_rate, healthz_rate=args.healthz_rate)) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
