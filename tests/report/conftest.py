"""A hand-built warning whose every figure is known: rows inserted directly, not through other features.

温岭市 (331081) gets a red typhoon warning at T0 with a 10-minute deadline. Who answered:

  region              person       answer                                   outbox
  331081  county      not required (informed only), delivered                sms delivered
  331081001 town      sms_reply  +30 s   on time                             sms delivered
  331081001001 vil    link       +120 s  on time                             sms delivered
  331081001001 01     sms_reply  +60 s   on time                             sms delivered
  331081001001 02     link       +300 s  on time                             sms delivered
  331081001002 vil    never — timed out                                      sms sent
  331081001002 01     voice_key  +900 s  late                                sms delivered, voice delivered
  331081001002 02     proxy      +1200 s late                                sms undelivered
  331081002 town      never — pending, nothing delivered                     sms queued
  331081002001 vil    proxy      +500 s  on time                             sms delivered
  331081002001 01     never — timed out; deputy answered, village not         sms delivered, voice sent ×2
  331081002001 02     never — delivered, waiting                             sms failed, voice undelivered
  + loudspeakers in the three villages (broadcast delivered)

→ 12 reached people, 11 required, 7 answered (5 on time, 2 late, 2 by proxy), 4 never; rate 7/11.
Times to answer: 30 60 120 300 500 900 1200 s → p50 300, p90 1020, max 1200.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert, update

from tests.factories import build_tree, make_user
from warning_service.acknowledgment.models import Acknowledgment, Feedback
from warning_service.db import Database
from warning_service.delivery.models import OutboxMessage
from warning_service.early_warning.models import EarlyWarning, WarningRevision, WarningTarget
from warning_service.notice.models import Notice
from warning_service.person.models import Person

DEADLINE = 600
POLICY = {"roles": ["county_responsible", "town_responsible", "village_responsible", "grid_responsible"],
          "ack_required": True, "ack_deadline": DEADLINE, "channels": ["sms", "broadcast"],
          "recall_channel": "voice", "recall_interval": 180, "recall_count": 3, "escalate": True,
          "escalate_until": "county", "call_deputy": True, "hazard": "typhoon", "level": "red",
          "source": "default"}


@dataclass
class Case:
    warning_id: int
    t0: datetime
    notices: dict[str, int] = field(default_factory=dict)  # region code -> primary notice id
    other_warnings: dict[str, int] = field(default_factory=dict)


async def insert_warning(db: Database, *, t0: datetime, targets: list[str], hazard: str = "typhoon",
                         level: str = "red", status: str = "actual", n: int = 1,
                         policy: dict | None = None) -> int:
    async with db.session() as s:
        w = EarlyWarning(identifier=f"33108141000000_{t0:%Y%m%d%H%M%S}_{n}", sender="温岭市防汛指挥部",
                         sender_code="33108141000000", hazard=hazard, level=level, status=status,
                         state="active", title=f"温岭市{level}预警{n}", description="台风",
                         instruction="防御指南", issued_at=t0, effective_at=t0, targets=targets,
                         area_desc="温岭市", policy=policy or POLICY, reply_code=n, updated_at=t0)
        s.add(w)
        await s.flush()
        await s.execute(insert(WarningTarget), [{"warning_id": w.id, "region_code": c} for c in targets])
        return w.id


async def add_notice(db: Database, *, warning_id: int, person_id: int, t0: datetime, state: str,
                     required: bool = True, reason: str = "primary", ack: tuple[str, int] | None = None,
                     delivered: bool = False, escalation_of: int | None = None, root_id: int | None = None,
                     outbox: list[tuple[str, str]] = (), round_: int = 1, kind: str = "alert") -> int:
    """One notice with its answer (path, seconds after T0) and its messages [(channel, status)]."""
    async with db.session() as s:
        person = await s.get(Person, person_id)
        deadline = t0 + timedelta(seconds=DEADLINE) if required else None
        n = Notice(warning_id=warning_id, person_id=person_id, role=person.role,
                   region_code=person.region_code, reason=reason, escalation_of=escalation_of,
                   root_id=root_id, state=state, requires_ack=required, round=round_, deadline=deadline,
                   delivered_at=t0 + timedelta(seconds=5) if delivered or ack else None, created_at=t0)
        s.add(n)
        await s.flush()
        if ack:
            path, secs = ack
            at = t0 + timedelta(seconds=secs)
            n.acknowledged_at = at
            s.add(Acknowledgment(notice_id=n.id, round=round_, warning_id=warning_id, person_id=person_id,
                                 path=path, acknowledged_at=at, late=secs > DEADLINE,
                                 proxy_method="phone" if path == "proxy" else None))
        for i, (channel, status) in enumerate(outbox):
            s.add(OutboxMessage(
                warning_id=warning_id, notice_id=n.id, kind=kind if i == 0 else "recall", channel=channel,
                address=person.phone or "", status=status,
                attempts=2 if status == "sent" and channel == "voice" else 1,
                next_attempt_at=t0, idempotency_key=f"n{n.id}:{i}:{channel}", created_at=t0,
                sent_at=t0 if status in ("sent", "delivered", "undelivered") else None,
                delivered_at=t0 + timedelta(seconds=5) if status == "delivered" else None,
                error_code="30006" if status in ("failed", "undelivered") else None,
                updated_at=t0 + timedelta(seconds=10 * (i + 1))))
        return n.id


@pytest.fixture
async def tree(db, clock):
    t = await build_tree(db, now=clock.now(), grids_per_village=2)
    await make_user(db, username="wl_audit", role="auditor", region="331081", now=clock.now())
    await make_user(db, username="town_audit", role="auditor", region="331081002", now=clock.now())
    await make_user(db, username="lh_audit", role="auditor", region="331082", now=clock.now())
    await make_user(db, username="wl_duty", role="duty_officer", region="331081", now=clock.now())
    await make_user(db, username="zj_admin", role="admin", region="33", now=clock.now())
    return t


@pytest.fixture
async def case(db, clock, tree) -> Case:
    t0 = clock.now()
    wid = await insert_warning(db, t0=t0, targets=["331081"])
    c = Case(warning_id=wid, t0=t0)
    p = tree.person
    d = "delivered"
    spec = [
        ("331081", "county_responsible", dict(state="delivered", required=False, delivered=True,
                                              outbox=[("sms", d)])),
        ("331081001", "town_responsible", dict(state="acknowledged", ack=("sms_reply", 30),
                                               outbox=[("sms", d)])),
        ("331081001001", "village_responsible", dict(state="acknowledged", ack=("link", 120),
                                                     outbox=[("sms", d)])),
        ("33108100100101", "grid_responsible", dict(state="acknowledged", ack=("sms_reply", 60),
                                                    outbox=[("sms", d)])),
        ("33108100100102", "grid_responsible", dict(state="acknowledged", ack=("link", 300),
                                                    outbox=[("sms", d)])),
        ("331081001002", "village_responsible", dict(state="timed_out", outbox=[("sms", "sent")])),
        ("33108100100201", "grid_responsible", dict(state="acknowledged", ack=("voice_key", 900),
                                                    outbox=[("sms", d), ("voice", d)])),
        ("33108100100202", "grid_responsible", dict(state="acknowledged", ack=("proxy", 1200),
                                                    outbox=[("sms", "undelivered")])),
        ("331081002", "town_responsible", dict(state="pending", outbox=[("sms", "queued")])),
        ("331081002001", "village_responsible", dict(state="acknowledged", ack=("proxy", 500),
                                                     outbox=[("sms", d)])),
        ("33108100200101", "grid_responsible", dict(state="timed_out", delivered=True,
                                                    outbox=[("sms", d), ("voice", "sent")])),
        ("33108100200102", "grid_responsible", dict(state="delivered", delivered=True,
                                                    outbox=[("sms", "failed"), ("voice", "undelivered")])),
    ]
    for region, role, kw in spec:
        c.notices[region] = await add_notice(db, warning_id=wid, person_id=p(region, role), t0=t0, **kw)
    silent = c.notices["33108100200101"]
    async with db.session() as s:
        deputy = Person(region_code="33108100200101", name="B岗", role="grid_responsible",
                        phone="+8613900009999", created_at=t0, updated_at=t0)
        s.add(deputy)
        await s.flush()
        deputy_id = deputy.id
        for village in ("331081001001", "331081001002", "331081002001"):
            s.add(OutboxMessage(warning_id=wid, notice_id=None, kind="alert", channel="broadcast",
                                address=village, region_code=village, status="delivered", attempts=1,
                                next_attempt_at=t0, idempotency_key=f"b{village}:{wid}", created_at=t0,
                                updated_at=t0))
    await add_notice(db, warning_id=wid, person_id=deputy_id, t0=t0, state="acknowledged", reason="deputy",
                     ack=("sms_reply", 700), escalation_of=silent, root_id=silent, outbox=[("sms", d)],
                     kind="deputy")
    await add_notice(db, warning_id=wid, person_id=p("331081002001", "village_responsible"), t0=t0,
                     state="timed_out", reason="escalation", escalation_of=silent, root_id=silent,
                     outbox=[("voice", "sent")], kind="escalation")
    return c


EVIL = '=HYPERLINK("http://evil.example/x","点我")'


@dataclass
class FeedbackCase:
    """`case` after the answers: 响应反馈 from three people, two proxy answers with notes, an update and a lift.

      notice            answered   feedback at   at post  villages  evacuated
      331081001 town    +30 s      +600 s (met)  yes      2         120
      331081001001 vil  +120 s     +1000 s (late) yes     1         35
      331081002001 vil  proxy 500  +800 s (met)  no       1         300
    Seven answered → 3 given, 4 missing; 20 minutes on, the 4 missing are past the 15-minute deadline.
    By town, most evacuated first: 城东街道 (300, 1 village) then 太平街道 (155, 3 villages).
    Proxy answers: 331081002001 by visit (note EVIL), 33108100100202 by phone (note below).
    """

    case: Case
    lift_reason: str = "台风已登陆减弱,解除红色预警"
    update_reason: str = "风雨加剧,升级为红色预警"
    phone_note: str = "村书记电话确认,已组织转移"


@pytest.fixture
async def feedback_case(db, clock, case) -> FeedbackCase:
    fc = FeedbackCase(case=case)
    t0 = case.t0
    n = case.notices
    async with db.session() as s:
        for region, secs, at_post, villages, evacuated in [("331081001", 600, True, 2, 120),
                                                          ("331081001001", 1000, True, 1, 35),
                                                          ("331081002001", 800, False, 1, 300)]:
            at = t0 + timedelta(seconds=secs)
            s.add(Feedback(notice_id=n[region], at_post=at_post, villages_affected=villages,
                           people_evacuated=evacuated, note=f"{region} 已转移", created_at=at, updated_at=at))
        await s.execute(update(Acknowledgment).where(Acknowledgment.notice_id == n["331081002001"])
                        .values(proxy_method="visit", note=EVIL))
        await s.execute(update(Acknowledgment).where(Acknowledgment.notice_id == n["33108100100202"])
                        .values(note=fc.phone_note))
        # An identifier an attacker chose (issue 11): it must stay text in every export.
        await s.execute(update(EarlyWarning).where(EarlyWarning.id == case.warning_id).values(identifier=EVIL))
        for rev, msg_type, minutes, level, description in [
                (1, "alert", 0, "orange", "台风"), (2, "update", 10, "red", fc.update_reason),
                (3, "cancel", 60, "red", fc.lift_reason)]:
            s.add(WarningRevision(warning_id=case.warning_id, revision=rev, msg_type=msg_type,
                                  identifier=f"rev{rev}-{case.warning_id}", sent_at=t0 + timedelta(minutes=minutes),
                                  level=level, title="温岭市red预警1", description=description, instruction="防御指南",
                                  targets=["331081"], area_desc="温岭市"))
    clock.advance(timedelta(minutes=20))
    return fc
