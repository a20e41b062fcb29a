"""Every feature's router, in one place."""

from __future__ import annotations

from fastapi import FastAPI


def include_routers(app: FastAPI) -> None:
    from warning_service.auth.routes import router as auth
    from warning_service.console.routes import docs_router, mount_static
    from warning_service.console.routes import page_router as console_pages
    from warning_service.person.routes import router as people
    from warning_service.region.routes import router as regions

    # The console's pages come before the other features' /console pages: its login is the one login.
    for router in (auth, regions, people, console_pages, docs_router):
        app.include_router(router)
    mount_static(app)
    for module in ("early_warning", "delivery", "acknowledgment", "report", "ledger"):
        _include_optional(app, module)


def _include_optional(app: FastAPI, feature: str) -> None:
    import importlib

    try:
        mod = importlib.import_module(f"warning_service.{feature}.routes")
    except ModuleNotFoundError as exc:
        if exc.name != f"warning_service.{feature}.routes":
            raise
        return
    for name in ("router", "public_router", "webhook_router", "page_router"):
        if hasattr(mod, name):
            app.include_router(getattr(mod, name))
