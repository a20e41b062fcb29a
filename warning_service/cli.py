"""The `warning-service` command."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from warning_service import heap, loop
from warning_service.auth.service import create_user
from warning_service.clock import utcnow
from warning_service.config import Settings, get_settings
from warning_service.db import Database
from warning_service.demo import DemoRefused, prepare_demo
from warning_service.errors import DomainError
from warning_service.ledger import service as ledger
from warning_service.logging import configure_logging
from warning_service.main import create_app
from warning_service.migrate import upgrade
from warning_service.person import service as people
from warning_service.region import service as regions
from warning_service.runtime import build_runtime
from warning_service.worker import Worker

app = typer.Typer(help="warning-service: 预警叫应 — early warnings that must be answered.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
regions_app = typer.Typer(help="Region hierarchy.", no_args_is_help=True)
people_app = typer.Typer(help="Responsible persons.", no_args_is_help=True)
users_app = typer.Typer(help="Console users.", no_args_is_help=True)
audit_app = typer.Typer(help="The ledger.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(regions_app, name="regions")
app.add_typer(people_app, name="people")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")

err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def _run(fn: Callable[[Settings], Awaitable[T]]) -> T:
    """Run one async unit of work; domain errors print their reason and exit non-zero."""
    try:
        settings = get_settings()
    except Exception as exc:  # noqa: BLE001 — configuration errors name the key; show them plainly
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    try:
        return loop.run(fn(settings), kind=settings.event_loop)
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc.message_en}\n[red]错误:[/red]{exc.message_zh}")
        raise typer.Exit(1) from None
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] file not found: {exc.filename}")
        raise typer.Exit(1) from None


def _progress(label: str) -> tuple[Progress, Callable[[int, int], None]]:
    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                   transient=False, disable=not sys.stderr.isatty())
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


async def _with_session(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    db = Database(settings.async_database_url)
    try:
        async with db.session() as s:
            return await fn(s)
    finally:
        await db.dispose()


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("heads")) -> None:
    """Apply migrations (creates the SQLite file if needed)."""
    settings = get_settings()
    upgrade(settings.database_url, revision)
    err.print(f"database at {revision}: {_safe_url(settings.database_url)}")


def _safe_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@regions_app.command("import")
def regions_import(file: Path) -> None:
    """Import regions from CSV `code,name,level,parent_code` (idempotent, all or nothing)."""
    async def go(settings: Settings) -> Any:
        bar, update = _progress("regions")
        with bar:
            return await _with_session(settings, lambda s: regions.import_csv(s, path=file, progress=update))

    t0 = time.perf_counter()
    result = _run(go)
    err.print(f"imported {result.rows} regions ({result.inserted} new, {result.updated} updated) "
              f"in {time.perf_counter() - t0:.2f} s")


@regions_app.command("add-grids")
def regions_add_grids(per_village: int = typer.Option(..., "--per-village", min=1, max=99),
                      under: str | None = typer.Option(None, help="only villages under this region")) -> None:
    """Give every village N grids whose codes extend the village code."""
    async def go(settings: Settings) -> int:
        bar, update = _progress("grids")
        with bar:
            return await _with_session(settings, lambda s: regions.add_grids(
                s, per_village=per_village, under=under, progress=update))

    t0 = time.perf_counter()
    n = _run(go)
    err.print(f"{n} grids ensured in {time.perf_counter() - t0:.2f} s")


@people_app.command("import")
def people_import(file: Path) -> None:
    """Import people from CSV `region_code,name,role,phone,email` (UTF-8 or GB18030)."""
    async def go(settings: Settings) -> Any:
        bar, update = _progress("people")
        with bar:
            return await _with_session(settings, lambda s: people.import_csv(
                s, path=file, now=utcnow(), progress=update))

    result = _run(go)
    err.print(f"imported {result.rows} people ({result.inserted} new, {result.updated} updated)")


@users_app.command("create")
def users_create(username: str = typer.Option(...), password: str = typer.Option(..., prompt=True,
                 hide_input=True), role: str = typer.Option(...), region: str = typer.Option(...)) -> None:
    """Create a console user (admin, duty_officer, leader = 带班领导 who signs off, or auditor) scoped to a region."""
    async def go(settings: Settings) -> Any:
        async def work(s: Any) -> Any:
            now = utcnow()
            user = await create_user(s, username=username, password=password, role=role, region_code=region,
                                     now=now)
            await ledger.append(s, at=now, actor="cli", action="user.created", subject_type="user",
                                subject_id=user.id, details={"username": username, "role": role,
                                                            "region_code": region})
            return user
        return await _with_session(settings, work)

    user = _run(go)
    err.print(f"user {user.username} ({user.role}, scope {user.region_code}) created")


@audit_app.command("verify")
def audit_verify(known_id: int | None = typer.Option(None, "--known-id", help="an entry id recorded earlier"),
                 known_hash: str | None = typer.Option(None, "--known-hash", help="its hash, as printed then")
                 ) -> None:
    """Check the ledger's hash chain; names the first broken entry. Record the head it prints."""
    if (known_id is None) != (known_hash is None):
        err.print("[red]error:[/red] give --known-id and --known-hash together")
        raise typer.Exit(2)
    known = (known_id, known_hash) if known_id is not None and known_hash is not None else None

    async def go(settings: Settings) -> Any:
        key = ledger.ledger_key(settings.secret_key.get_secret_value())
        return await _with_session(settings, lambda s: ledger.verify(s, key=key, known=known))

    result = _run(go)
    if result.ok:
        err.print(f"ledger intact: {result.checked} entries verified, {result.pending} awaiting sealing\n"
                  f"head: --known-id {result.head_id} --known-hash {result.head_hash}  (write these down)")
        return
    err.print(f"[red]ledger broken at entry {result.first_broken_id}:[/red] {result.reason}\n{result.reason_zh}")
    raise typer.Exit(1)


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000,
          worker: bool = typer.Option(True, help="run the dispatcher and escalation worker in-process")) -> None:
    """Run the API (and, by default, the worker in the same process)."""
    _serve(_follow_port(get_settings(), host=host, port=port), host=host, port=port, worker=worker)


def _serve(settings: Settings, *, host: str, port: int, worker: bool) -> None:
    uvicorn.run(create_app(settings, start_worker=worker), host=host, port=port, log_level="warning",
                loop=loop.chosen(settings.event_loop))


def _follow_port(settings: Settings, *, host: str, port: int) -> Settings:
    """Links in messages must reach this server: unless PUBLIC_BASE_URL is set, it follows --host/--port."""
    if "public_base_url" in settings.model_fields_set:
        return settings
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return settings.model_copy(update={"public_base_url": f"http://{shown}:{port}"})


@app.command("worker")
def worker_cmd() -> None:
    """Run the worker alone (dispatcher, escalation, ledger sealing); run several for more throughput."""
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)

    async def main() -> None:
        rt = await build_runtime(settings)
        heap.settle()
        try:
            # SIGTERM/SIGINT let the current batch finish; a kill -9 is safe too (the database remembers).
            await Worker(rt).run_until_signalled()
        finally:
            await rt.close()

    loop.run(main(), kind=settings.event_loop)


@app.command()
def demo(host: str = "127.0.0.1", port: int = 8000,
         serve_after: bool = typer.Option(True, "--serve/--no-serve", help="start the server afterwards")) -> None:
    """Set up a demo (温岭市 with grids, people and users) on the embedded default and serve it."""
    settings = _follow_port(get_settings(), host=host, port=port)
    try:
        info = prepare_demo(settings)
    except DemoRefused as exc:
        raise SystemExit(f"refused: {exc}") from None
    out = Console()
    base = settings.public_base_url
    out.print(f"\n[bold]warning-service demo[/bold] — {info['county']}: {info['regions']} regions, "
              f"{info['people']} responsible persons\n"
              f"  API docs      {base}/docs\n"
              f"  Console       {base}/console/  (值班台: issue, list, live board, roster; reports for auditors)\n"
              f"  Health        {base}/readyz\n"
              f"  Duty officer  username [bold]{info['duty']}[/bold]  password [bold]{info['password']}[/bold]\n"
              f"  Leader 带班领导 username [bold]{info['leader']}[/bold]  password [bold]{info['password']}[/bold]"
              "  (signs off levels with sign_off in POLICY_FILE)\n"
              f"  Auditor       username [bold]{info['auditor']}[/bold]  password [bold]{info['password']}[/bold]\n"
              f"  Admin         username [bold]admin[/bold]  password [bold]{info['password']}[/bold]\n"
              f"  Database      {info['database']}\n"
              f"  Channels      console (messages are printed here)\n")
    if serve_after:
        _serve(settings, host=host, port=port, worker=True)


if __name__ == "__main__":
    app()
