"""Every feature's router, in one place; the order is the order routes are matched in."""

from __future__ import annotations

from fastapi import FastAPI

from warning_service.acknowledgment import routes as acknowledgment
from warning_service.auth import routes as auth
from warning_service.delivery import routes as delivery
from warning_service.early_warning import pages as early_warning_pages
from warning_service.early_warning import routes as early_warning
from warning_service.exports import routes as exports
from warning_service.ledger import routes as ledger
from warning_service.notice import routes as notice
from warning_service.person import routes as person
from warning_service.region import routes as region
from warning_service.report import pages as report_pages
from warning_service.report import routes as report


def include_routers(app: FastAPI) -> None:
    for router in (
        auth.router,
        region.router,
        person.router,
        early_warning.router,
        early_warning_pages.page_router,  # the duty officer's live page
        notice.router,  # a notice's answers, feedback, delivery log; proxy answers
        delivery.webhook_router,  # Twilio status callbacks
        delivery.push_router,  # domestic SMS platforms' receipts
        acknowledgment.public_router,  # the answer links, no login
        acknowledgment.webhook_router,  # inbound SMS replies and calls
        acknowledgment.push_router,  # domestic SMS platforms' replies
        report.router,
        exports.router,  # background exports of reports
        report_pages.page_router,  # the auditors' console
        ledger.router,
    ):
        app.include_router(router)
