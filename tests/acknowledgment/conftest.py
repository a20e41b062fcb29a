from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select, update

from warning_service.acknowledgment.models import Acknowledgment
from warning_service.actor import Actor
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning import service as warnings
from warning_service.early_warning.models import WarningCreate, WarningLift
from warning_service.ledger.models import LedgerPending
from warning_service.notice.models import Notice
from warning_service.notice.tokens import link_key, make_token

PROVINCE = Actor(name="user:test", scope_path="/33/", scope_code="33")


async def issue(runtime, *, targets: list[str], hazard: str = "typhoon", level: str = "red", **extra) -> int:
    """Issue a warning straight through the service; returns its id."""
    data = WarningCreate(hazard=hazard, level=level, description="台风“烟花”预计今夜登陆,最大风力14级。",
                         targets=targets, **extra)
    async with runtime.db.session() as s:
        result = await warnings.issue_warning(s, data=data, actor=PROVINCE, policy=runtime.policy,
                                              settings=runtime.settings, now=runtime.clock.now())
        return result.warning.id  # type: ignore[return-value]


async def lift(runtime, warning_id: int) -> None:
    async with runtime.db.session() as s:
        await warnings.lift_warning(s, warning_id=warning_id, data=WarningLift(reason="台风已减弱"), actor=PROVINCE,
                                    now=runtime.clock.now())


async def notice_of(db, warning_id: int, person_id: int) -> Notice:
    async with db.session() as s:
        q = select(Notice).where(Notice.warning_id == warning_id, Notice.person_id == person_id,
                                 Notice.reason == "primary")
        return (await s.execute(q)).scalar_one()


async def reload(db, model, id_):
    async with db.session() as s:
        return await s.get(model, id_, populate_existing=True)


async def acks(db, notice_id: int | None = None) -> list[Acknowledgment]:
    async with db.session() as s:
        q = select(Acknowledgment).order_by(Acknowledgment.id)
        if notice_id is not None:
            q = q.where(Acknowledgment.notice_id == notice_id)
        return list((await s.execute(q)).scalars())


async def ledger_actions(db, action: str) -> list[LedgerPending]:
    async with db.session() as s:
        return list((await s.execute(select(LedgerPending).where(LedgerPending.action == action)
                                     .order_by(LedgerPending.id))).scalars())


async def count(db, model, *where) -> int:
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def set_notice(db, notice_id: int, **values) -> None:
    async with db.session() as s:
        await s.execute(update(Notice).where(Notice.id == notice_id).values(**values))


async def add_chain_notice(db, *, primary: Notice, person_id: int, reason: str, now: datetime,
                           escalation_of: int | None = None, state: str = "delivered",
                           queued_kind: str | None = None) -> Notice:
    """A deputy/escalation notice as the escalation feature creates them, optionally with a queued message."""
    async with db.session() as s:
        n = Notice(warning_id=primary.warning_id, person_id=person_id, role="village_responsible",
                   region_code=primary.region_code, reason=reason, escalation_of=escalation_of or primary.id,
                   root_id=primary.id, state=state, requires_ack=True, round=primary.round,
                   deadline=primary.deadline, next_action_at=now, step="initial", created_at=now)
        s.add(n)
        await s.flush()
        if queued_kind:
            s.add(queued(n, kind=queued_kind, now=now))
        return n


def queued(n: Notice, *, kind: str, now: datetime, channel: str = "voice") -> OutboxMessage:
    return OutboxMessage(warning_id=n.warning_id, notice_id=n.id, revision=1, kind=kind, channel=channel,
                         address="+8613900000000", priority=4, status="queued", next_attempt_at=now,
                         idempotency_key=f"test:{n.id}:{kind}:{channel}", created_at=now, updated_at=now)


def token_for(settings, notice_id: int) -> str:
    return make_token(notice_id, key=link_key(settings.secret_key.get_secret_value()))


TWILIO_TOKEN = "test-twilio-auth-token"


@pytest.fixture
def settings(db):
    """The shared test settings plus a Twilio auth token, so signed webhooks can be verified."""
    from tests.conftest import make_settings

    return make_settings(db, twilio_auth_token=TWILIO_TOKEN)


def signature(settings, path_and_query: str, form: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    from twilio.request_validator import RequestValidator

    return RequestValidator(token).compute_signature(settings.public_base_url + path_and_query, form)


async def post_signed(client, settings, path_and_query: str, form: dict[str, str], *,
                      sign_with: str | None = None, signed: bool = True):
    headers = {}
    if signed:
        headers["X-Twilio-Signature"] = signature(settings, path_and_query, form, sign_with or TWILIO_TOKEN)
    return await client.post(path_and_query, data=form, headers=headers)


async def phone_of(db, person_id: int) -> str:
    from warning_service.person.models import Person

    async with db.session() as s:
        return (await s.get(Person, person_id)).phone
