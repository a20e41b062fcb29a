"""The FastAPI application: routers, error handlers, health, metrics and the in-process worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from warning_service import __version__, heap
from warning_service.clock import Clock
from warning_service.config import Settings, get_settings
from warning_service.errors import DomainError
from warning_service.logging import configure_logging, get_logger
from warning_service.ops import lag_figures, lagging, provider_health, provider_metric_lines, render_metrics
from warning_service.routers import include_routers
from warning_service.runtime import Runtime, build_runtime
from warning_service.security import SecurityMiddleware
from warning_service.worker import Worker

log = get_logger(__name__)


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None,
               clock: Clock | None = None, start_worker: bool | None = None) -> FastAPI:
    """Build the app. Tests pass their own runtime (database, clock, channels) and keep the worker off."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    owns_runtime = runtime is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or await build_runtime(settings, clock=clock)
        app.state.runtime = rt
        app.state.db = rt.db
        app.state.clock = rt.clock
        app.state.settings = settings
        worker = None
        run_worker = settings.run_worker_in_process if start_worker is None else start_worker
        if run_worker:
            worker = Worker(rt)
            await worker.start()
        if owns_runtime:  # a served process, not a test's app
            await rt.db.warm()
            heap.settle()
        log.info("started", version=__version__, database=rt.db.engine.dialect.name,
                 redis=bool(rt.redis), worker=bool(worker))
        try:
            yield
        finally:
            if worker:
                await worker.stop()
            if owns_runtime:
                await rt.close()

    # /docs and /redoc are served by the console feature from local assets (no CDN on an intranet).
    app = FastAPI(title="warning-service 预警叫应", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None,
                  description="Issue early warnings down to every grid's responsible person and prove each "
                              "one answered.")
    app.add_middleware(SecurityMiddleware, json_bytes=settings.max_json_body_bytes,
                       cap_bytes=settings.max_cap_body_bytes, import_bytes=settings.max_import_body_bytes)
    if runtime is not None:
        # Tests drive the app without the lifespan when they use an ASGI transport.
        app.state.runtime, app.state.db, app.state.clock = runtime, runtime.db, runtime.clock
        app.state.settings = settings

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.to_dict()}, headers=exc.headers())

    @app.exception_handler(IntegrityError)
    async def integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        # Two requests raced for the same unique thing (an identifier, a username): nothing was written.
        log.warning("integrity_conflict", path=request.url.path, error=str(exc.orig)[:300])
        return JSONResponse(status_code=409, content={"detail": {
            "code": "conflict", "message": "conflicting concurrent change; nothing was written, please retry",
            "message_zh": "并发冲突,本次请求未写入任何数据,请重试"}})

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "form")]
            errors.append({"field": ".".join(loc) or None, "message": e.get("msg"),
                           "message_zh": f"字段 {'.'.join(loc) or '请求'} 无效:{e.get('msg')}"})
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        return JSONResponse(status_code=422, content={"detail": {
            "code": "invalid", "field": first["field"], "message": first["message"],
            "message_zh": first.get("message_zh", "请求无效"), "errors": errors}})

    # FastAPI tries routes in order, ~4 µs each with the included routers' bookkeeping: behind the features'
    # ~130 routes, a liveness probe cost 0.5 ms of the event loop. Nothing else answers these paths.
    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: database and Redis reachable, how far the workers lag, and each provider's breaker.

        A provider whose breaker is open makes the service "degraded" (200, the provider named) as long as
        another provider of its channel is closed; a channel whose every provider is open fails readiness."""
        rt: Runtime = request.app.state.runtime
        body: dict[str, Any] = {"database": "ok", "redis": "not configured"}
        ok = True
        try:
            async with rt.db.session() as s:
                await s.execute(text("SELECT 1"))
                body.update(await lag_figures(s, now=rt.clock.now()))
            # Lag fails readiness too: messages stuck past a dead worker's lease, or a queue far behind.
            reasons = lagging(body, max_lag_seconds=rt.settings.ready_max_lag_seconds)
            if reasons:
                ok, body["lag"] = False, reasons
        except Exception as exc:  # noqa: BLE001 — readiness reports any failure
            ok, body["database"] = False, f"error: {type(exc).__name__}: {exc}"
        if rt.redis is not None:
            try:
                await rt.redis.ping()
                body["redis"] = "ok"
            except Exception as exc:  # noqa: BLE001
                ok, body["redis"] = False, f"error: {type(exc).__name__}: {exc}"
        health = await provider_health(rt.channels)
        body["providers"] = health.states
        if health.degraded:
            body["degraded"] = health.degraded
        if health.down:
            ok, body["providers_down"] = False, health.down
        body["status"] = "unavailable" if not ok else "degraded" if health.degraded else "ok"
        return JSONResponse(status_code=200 if ok else 503, content=body)

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def metrics(request: Request) -> PlainTextResponse:
        """Prometheus metrics."""
        rt: Runtime = request.app.state.runtime
        providers = await provider_metric_lines(rt.channels, rt.provider_stats, rt.settings.provider_limits())
        body = await render_metrics(db=rt.db, now=rt.clock.now(), counters=rt.counters, providers=providers)
        return PlainTextResponse(body, media_type="text/plain; version=0.0.4")

    include_routers(app)
    return app

