"""Heavy reads against answers: a province XLSX export and a grid-level report while wrk drives `/healthz`
and acknowledgment links at the same API process, before (export built inside the request, report on the
event loop) and after (export as a background job built by the in-process worker in a child process,
report in the process pool), in the same run, and "idle": the same wrk load with no heavy read — on a
shared machine the latency goals are judged against it.

    python -m bench.heavy_reads [--database-url postgresql://postgres@127.0.0.1:5432/ws_exports]
                                [--divisions PATH] [--modes idle,after | --only idle|before|after]

Uses the bench.report warning over all of Zhejiang (~129,000 notices; built on first use). Prints, for each
mode: the time of the export and of the report, wrk's p50/p99 and rate for `/healthz` and for link answers,
and the peak RSS of the API process (and of its largest child). Goals: link answers p99 < 100 ms, `/healthz`
p99 < 50 ms, API process < 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


def descendants(pid: int) -> list[int]:
    out, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        if int(f.read().rsplit(") ", 1)[1].split()[1]) == parent:
                            out.append(int(entry))
                            frontier.append(int(entry))
                except (OSError, IndexError, ValueError):
                    continue
    return out


class RssSampler(threading.Thread):
    """Peak RSS of the API process and of its largest child, sampled every 100 ms."""

    def __init__(self, pid: int, others: list[int] | None = None) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.child_peak, self.done = pid, 0.0, 0.0, threading.Event()
        self.others = others or []  # the worker process: its export child counts as a child

    def run(self) -> None:
        while not self.done.wait(0.1):
            self.peak = max(self.peak, rss_mb(self.pid))
            kids = [c for p in (self.pid, *self.others) for c in descendants(p)]
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


def without_heavy_reads(seconds: float) -> dict[str, float]:
    time.sleep(seconds)
    return {}


def run_mode(url: str, mode: str, warning_id: int, link_data: Path, health_data: Path, budget: float
             ) -> dict[str, Any]:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="heavy-exports-") as export_dir:
        procs = serve(url, port, mode=mode, export_dir=export_dir)
        proc = procs[0]
        sampler = RssSampler(proc.pid, [p.pid for p in procs[1:]])
        try:
            time.sleep(2)
            idle = rss_mb(proc.pid)
            sampler.start()
            health = start_wrk(port, OUT / "heavy-healthz.lua", health_data, 4)
            link = start_wrk(port, OUT / "heavy-link.lua", link_data, 8)
            time.sleep(2)
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
    return {"mode": mode, "idle_rss_mb": idle, "peak_rss_mb": sampler.peak, "child_peak_rss_mb": sampler.child_peak,
            "healthz": h, "link": ln, **figures}


def show(r: dict[str, Any]) -> bool:
    def lat(w: dict[str, Any]) -> str:
        rate = w["requests"] / (w["duration_us"] / 1e6)
        errors = w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["status_errors"] + w["timeouts"]
        return (f"{rate:7,.0f} req/s  p50 {w['p50_us'] / 1000:7.1f} ms  p99 {w['p99_us'] / 1000:8.1f} ms  "
                f"max {w['max_us'] / 1000:8.1f} ms  errors {errors}")

    ok = (r["link"]["p99_us"] / 1000 < GOALS["link_p99_ms"] and r["healthz"]["p99_us"] / 1000 < GOALS["healthz_p99_ms"]
          and r["peak_rss_mb"] < GOALS["rss_mb"])
    where = {"before": "export built in the request, report on the event loop",
             "after": "export job built by the worker process in a child, report in the API's process pool",
             "idle": f"no heavy read: the same wrk load alone for {IDLE_SECONDS:.0f} s (the machine's baseline)"}
    print(f"\n== {r['mode']}: {where[r['mode']]}")
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
    print(f"   API process RSS: idle {r['idle_rss_mb']:.0f} MB, peak {r['peak_rss_mb']:.0f} MB (goal < "
          f"{GOALS['rss_mb']:.0f} MB); largest child (report pool, export) peak {r['child_peak_rss_mb']:.0f} MB")
    print(f"   goals {'met' if ok else 'MISSED'}")
    return ok


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
    args = ap.parse_args()
    zhejiang.DIVISIONS = args.divisions
    warning_id, notices = asyncio.run(prepare(args.database_url))
    OUT.mkdir(parents=True, exist_ok=True)
    key = link_key(SECRET)
    link_data = OUT / "heavy-link-tokens.txt"
    link_data.write_text("".join(make_token(nid, key=key) + "\n" for nid in notices))
    health_data = OUT / "heavy-healthz.txt"
    health_data.write_text("healthz\n")
    (OUT / "heavy-link.lua").write_text(LUA.replace("REQUEST", LINK_REQUEST))
    (OUT / "heavy-healthz.lua").write_text(LUA.replace("REQUEST", HEALTHZ_REQUEST))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"warning {warning_id}: {len(notices):,} notices to answer by link; {os.cpu_count()} CPUs "
          f"(load average {load}) shared by the API, its children, PostgreSQL and two wrk processes", flush=True)
    ok = True
    for mode in [args.only] if args.only else args.modes.split(","):
        ok = show(run_mode(args.database_url, mode, warning_id, link_data, health_data, args.export_budget)) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
