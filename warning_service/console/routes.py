"""The console's pages, its local static files, and /docs and /redoc served without any other host."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from warning_service.console.pages import page_router

STATIC = Path(__file__).resolve().parent / "static"
# Swagger UI and ReDoc as shipped by the fastapi-offline package (MIT; the bundles keep their own licences).
DOCS_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"

docs_router = APIRouter(include_in_schema=False)
# The bundles hard-code a few outside addresses (ReDoc's sidebar logo from cdn.redoc.ly): the page's own
# policy keeps the browser from even trying, so an intranet sees no stalled request and no leak.
LOCAL_ONLY = ('<meta http-equiv="Content-Security-Policy" content="default-src \'self\'; '
              "img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
              "worker-src 'self' blob:; connect-src 'self'; font-src 'self' data:\">")


def _local_only(page: HTMLResponse) -> HTMLResponse:
    html = bytes(page.body).decode().replace("<head>", "<head>\n" + LOCAL_ONLY, 1)
    return HTMLResponse(html)


@docs_router.get("/docs", response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    return _local_only(get_swagger_ui_html(openapi_url=request.app.openapi_url, title=f"{request.app.title} · API",
                               swagger_js_url="/static/docs/swagger-ui-bundle.js",
                               swagger_css_url="/static/docs/swagger-ui.css",
                               swagger_favicon_url="/static/console/favicon.svg",
                               # No validator badge: it would send the spec to validator.swagger.io.
                               swagger_ui_parameters={"validatorUrl": None}))


@docs_router.get("/redoc", response_class=HTMLResponse)
async def redoc(request: Request) -> HTMLResponse:
    return _local_only(get_redoc_html(openapi_url=request.app.openapi_url, title=f"{request.app.title} · ReDoc",
                          redoc_js_url="/static/docs/redoc.standalone.js",
                          redoc_favicon_url="/static/console/favicon.svg", with_google_fonts=False))


def mount_static(app: FastAPI) -> None:
    """Every script, style and font the pages use comes from here: county intranets reach no other host."""
    app.mount("/static/console", StaticFiles(directory=STATIC), name="console-static")
    app.mount("/static/docs", StaticFiles(directory=DOCS_ASSETS), name="docs-static")


__all__ = ["docs_router", "mount_static", "page_router"]
