"""Every feature's router, in one place."""

from __future__ import annotations

from fastapi import FastAPI

from warning_service.acknowledgment import routes as acknowledgment
from warning_service.auth.routes import router as auth
from warning_service.delivery import routes as delivery
from warning_service.early_warning import routes as early_warning
from warning_service.early_warning.pages import page_router as live_board
from warning_service.evacuation import pages as evacuation_pages
from warning_service.evacuation import routes as evacuation
from warning_service.ledger import routes as ledger
from warning_service.notice.routes import router as notices
from warning_service.person.routes import router as people
from warning_service.region.routes import router as regions
from warning_service.report import routes as report
from warning_service.report.pages import page_router as report_pages


def include_routers(app: FastAPI) -> None:
    for router in (auth, regions, people, early_warning.router, notices, acknowledgment.public_router,
                   acknowledgment.webhook_router, delivery.webhook_router, report.router, ledger.router,
                   live_board, report_pages, evacuation.router, evacuation_pages.page_router):
        app.include_router(router)
