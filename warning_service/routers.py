"""Every feature's router, in one place; the order is the order routes are matched in."""

from __future__ import annotations

from fastapi import FastAPI

from warning_service.acknowledgment import routes as acknowledgment
from warning_service.assessment import pages as assessment_pages
from warning_service.assessment import routes as assessment
from warning_service.auth import routes as auth
from warning_service.broadcast import pages as broadcast_pages
from warning_service.broadcast import routes as broadcast
from warning_service.console import routes as console
from warning_service.delivery import routes as delivery
from warning_service.drills import pages as drills_pages
from warning_service.drills import routes as drills
from warning_service.duty import pages as duty_pages
from warning_service.duty import routes as duty
from warning_service.early_warning import routes as early_warning
from warning_service.evacuation import pages as evacuation_pages
from warning_service.evacuation import routes as evacuation
from warning_service.exports import routes as exports
from warning_service.ledger import routes as ledger
from warning_service.notice import routes as notice
from warning_service.person import routes as person
from warning_service.region import routes as region
from warning_service.report import pages as report_pages
from warning_service.report import routes as report
from warning_service.response import pages as response_pages
from warning_service.response import routes as response
from warning_service.review import pages as review_pages
from warning_service.review import routes as review


def include_routers(app: FastAPI) -> None:
    # FastAPI tries every route in this order (~4 µs each): the paths a province's grid members and the carriers
    # hit thousands of times a second during a warning come first, instead of behind ~100 others (0.3-0.5 ms of
    # the event loop per answer). No other route matches /a/… or /webhooks/…, so none is shadowed.
    # The console's pages come before the other features' /console pages: its login is the one login.
    for router in (
        acknowledgment.public_router,  # the answer links, no login
        acknowledgment.webhook_router,  # inbound SMS replies and calls
        acknowledgment.push_router,  # domestic SMS platforms' replies
        delivery.webhook_router,  # Twilio status callbacks
        delivery.push_router,  # domestic SMS platforms' receipts
        auth.router,
        console.page_router,  # 值班台: login, menu, warning list, issue form, board, roster, audit
        console.docs_router,  # /docs and /redoc with assets served here
        region.router,
        person.router,
        duty.router,
        duty_pages.page_router,  # the duty roster page
        response.router,
        response_pages.page_router,  # the response board (到岗率)
        drills.router,  # 演练 and 号码核验
        drills_pages.page_router,  # the 演练 page
        early_warning.router,
        notice.router,  # a notice's answers, feedback, delivery log; proxy answers
        report.router,
        exports.router,  # background exports of reports
        report_pages.page_router,  # the auditors' console
        assessment.router,
        assessment_pages.page_router,  # the printable 通报
        review.router,
        review_pages.page_router,  # the printable 复盘
        ledger.router,
        evacuation.router,  # 转移避险 registers, tasks, board
        evacuation_pages.page_router,  # the task page and the evacuation board
        broadcast.router,  # 应急广播 terminals and playback
        broadcast.webhook_router,  # the broadcast platform's signed play receipts
        broadcast_pages.page_router,  # the terminal page
    ):
        app.include_router(router)
    console.mount_static(app)
