"""Issue, update, lift and expire warnings — set-based, one transaction each.

Issuing resolves every responsible person under the targets with one INSERT … SELECT, and queues their
first messages with one more per channel, so a province-wide warning is a handful of statements however
many people it reaches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warning_service.actor import Actor
from warning_service.auth.models import User
from warning_service.config import Settings
from warning_service.delivery.models import OutboxMessage
from warning_service.dialect import chunks
from warning_service.early_warning import fanout, identifiers
from warning_service.early_warning.guidance import default_instruction
from warning_service.early_warning.models import (
    ACTION_ZH,
    HAZARD_ZH,
    LEVEL_RANK,
    LEVEL_ZH,
    EarlyWarning,
    IssueRequest,
    WarningCreate,
    WarningLift,
    WarningRevision,
    WarningSignoff,
    WarningState,
    WarningTarget,
    WarningUpdate,
)
from warning_service.early_warning.policy import PolicyBook
from warning_service.errors import Conflict, Forbidden, Invalid, NotFound
from warning_service.evacuation import service as evacuation
from warning_service.ledger import service as ledger
from warning_service.logging import get_logger
from warning_service.notice import service as notices
from warning_service.notice.models import Notice, NoticeReason
from warning_service.region import service as region_service
from warning_service.region.models import Region
from warning_service.response import service as responses

log = get_logger(__name__)


STATE_CANNOT_CHANGE = {"lifted": "已解除", "expired": "已失效", "pending": "尚待审核签发、未发出",
                       "rejected": "已被退回、未发出"}


@dataclass
class IssueResult:
    warning: EarlyWarning
    recipient_count: int
    messages_queued: int
    replayed: bool = False  # an earlier request with the same idempotency key had issued it


@dataclass
class UpdateResult:
    warning: EarlyWarning
    new_recipients: int
    upgraded: bool
    messages_queued: int


# --- targets ------------------------------------------------------------------------------------------------

async def resolve_targets(session: AsyncSession, *, codes: list[str], actor: Actor) -> list[Region]:
    """Target regions, each inside the actor's scope; nested targets collapse into their ancestor."""
    wanted = list(dict.fromkeys(c.strip() for c in codes if c.strip()))
    if not wanted:
        raise Invalid("at least one target region is required", "至少需要一个预警区域", field="targets")
    found: dict[str, Region] = {}
    for batch in chunks(wanted, 1000):
        for r in (await session.execute(select(Region).where(Region.code.in_(batch)))).scalars():
            found[r.code] = r
    missing = [c for c in wanted if c not in found]
    if missing:
        raise Invalid(f"unknown target region {missing[0]}", f"预警区域 {missing[0]} 不存在", field="targets",
                      unknown=missing[:20])
    outside = [c for c in wanted if not actor.covers(found[c].path)]
    if outside:
        raise Forbidden(f"target {outside[0]} is outside your scope {actor.scope_code}",
                        f"预警区域 {outside[0]} 不在您的管辖范围 {actor.scope_code} 内", field="targets")
    regions = sorted((found[c] for c in wanted), key=lambda r: r.path)
    kept: list[Region] = []
    for r in regions:
        if not kept or not r.path.startswith(kept[-1].path):
            kept.append(r)
    return kept


def area_description(regions: list[Region]) -> str:
    names = [r.name for r in regions[:20]]
    more = f"等{len(regions)}个区域" if len(regions) > 20 else ""
    return "、".join(names) + more


async def free_reply_code(session: AsyncSession, *, keep: int | None = None) -> int:
    """Smallest two-digit code not used by an active warning (people reply "12" to answer warning 12), nor
    by an escalation digest still open (its recipient may owe answers to both). `keep` if it is still free:
    a warning held for sign-off keeps the code its preview showed unless another took it meanwhile."""
    active = EarlyWarning.state == WarningState.active
    used = set((await session.execute(select(EarlyWarning.reply_code).where(active))).scalars())
    used |= set((await session.execute(notices.open_digest_codes())).scalars())
    if keep is not None and keep not in used:
        return keep
    return next(c for c in range(10, 10_000) if c not in used)


async def _counts_by(session: AsyncSession, column: Any, *conds: Any) -> dict[str, int]:
    rows = (await session.execute(select(column, func.count()).where(*conds).group_by(column))).all()
    return {str(k): int(v) for k, v in rows}


# --- issue ----------------------------------------------------------------------------------------------------

async def prepare_warning(session: AsyncSession, *, data: WarningCreate, actor: Actor, policy: PolicyBook,
                          settings: Settings, now: datetime, source: str = "api",
                          policy_overrides: dict[str, Any] | None = None) -> tuple[list[Region], EarlyWarning]:
    """Check the request and build the (unsaved) warning an issue would write. Reads only.

    `policy_overrides` replace fields of the policy snapshot: a drill keeps loudspeakers silent, a number
    check asks everyone by SMS with a long deadline and no chase (drills/)."""
    regions = await resolve_targets(session, codes=data.targets, actor=actor)
    effective = data.effective_at or now
    if data.expires_at is not None and data.expires_at <= max(now, effective):
        raise Invalid("expires_at must be later than now and effective_at", "失效时间必须晚于当前时间和生效时间",
                      field="expires_at")
    scope_region = await session.get(Region, actor.scope_code)
    # Who issues (and whose product is forwarded) is policy per hazard: 防汛防台抗旱指挥部 in Zhejiang,
    # 防汛抗旱指挥部 in Ningxia, 森林防灭火指挥部 for fire danger, 转发…气象台 for weather products.
    # A warning issued while an emergency response covers its area follows the response level's policy
    # (Ⅰ级: every grid, 3 minutes) and is linked to the response.
    under = await responses.in_force(session, paths=[r.path for r in regions], hazard=data.hazard.value)
    snapshot = policy.snapshot_under(data.hazard.value, data.level.value, responses.highest(under),
                                     region_name=scope_region.name if scope_region else "")
    if policy_overrides:
        snapshot = {**snapshot, **policy_overrides}
    sender = data.sender or snapshot["issuer"]
    code = data.sender_code or identifiers.sender_code(actor.scope_code, agency=settings.issuer_agency_code)
    identifier = data.identifier or await identifiers.next_identifier(session, code=code, at=now)
    if (await session.execute(select(EarlyWarning.id).where(EarlyWarning.identifier == identifier))).first():
        raise Conflict(f"a warning with identifier {identifier} exists", f"预警标识 {identifier} 已存在",
                       field="identifier")
    area = area_description(regions)
    title = data.title or (f"{sender}{ACTION_ZH['alert']}{area}{HAZARD_ZH[data.hazard]}"
                           f"{LEVEL_ZH[data.level]}预警")
    instruction = data.instruction or default_instruction(settings.templates_dir, data.hazard.value,
                                                          data.level.value)
    return regions, EarlyWarning(
        identifier=identifier, sender=sender, sender_code=code, hazard=data.hazard.value, level=data.level.value,
        status=data.status.value, state="active", title=title[:300], description=data.description,
        instruction=instruction, issued_at=now, effective_at=effective, expires_at=data.expires_at,
        targets=[r.code for r in regions], area_desc=area, policy=snapshot, revision=1, ack_round=1,
        reply_code=await free_reply_code(session), source=source, created_by=actor.user_id, updated_at=now,
    )


async def issue_warning(session: AsyncSession, *, data: WarningCreate, actor: Actor, policy: PolicyBook,
                        settings: Settings, now: datetime, source: str = "api",
                        policy_overrides: dict[str, Any] | None = None) -> IssueResult:
    """Issue a warning: notices for every person reached and their first messages, in the caller's transaction.

    Under a policy with `sign_off` (审核签发) the warning is only stored, in state `pending`, with its targets
    and nothing sent: `signoff.approve` releases it later through `release` below, the same path as here.
    A CAP alert relayed from an upstream issuer was signed off there, and a drill (演练, scheduled by the
    duty room in advance) is a test of the chain, not a decision to warn: both are released at once.
    """
    regions, warning = await prepare_warning(session, data=data, actor=actor, policy=policy, settings=settings,
                                             now=now, source=source, policy_overrides=policy_overrides)
    held = bool(warning.policy.get("sign_off")) and source not in ("cap", "drill")
    if held:
        if actor.user_id is None:
            raise Invalid("a warning that needs sign-off must be submitted by a user",
                          "需要审核签发的预警必须由登录用户提交", field="sign_off")
        if not await has_approver(session, regions=regions):
            # Held with nobody able to approve, it would wait silently forever: refuse now, loudly.
            raise Conflict("this level needs sign-off (sign_off in POLICY_FILE) but no active leader account "
                           "covers these regions; create one (warning-service users create --role leader) or "
                           "change the policy",
                           "本级预警须经带班领导审核签发,但该区域没有可用的带班领导账号;"
                           "请先创建带班领导账号(角色 leader)或调整预警规则", field="sign_off")
        warning.state = WarningState.pending.value
    session.add(warning)
    await session.flush()
    await session.execute(insert(WarningTarget), [{"warning_id": warning.id, "region_code": r.code} for r in regions])
    if held:
        await _hold_for_signoff(session, warning=warning, actor=actor, now=now, source=source)
        return IssueResult(warning=warning, recipient_count=0, messages_queued=0)
    return await release(session, warning=warning, regions=regions, actor=actor, now=now, source=source)


async def _hold_for_signoff(session: AsyncSession, *, warning: EarlyWarning, actor: Actor, now: datetime,
                            source: str) -> None:
    session.add(WarningSignoff(warning_id=warning.id, submitted_by=actor.user_id, submitter=username(actor),
                               submitted_at=now))  # type: ignore[arg-type]
    await ledger.append(session, at=now, actor=actor.name, action="warning.submitted", subject_type="warning",
                        subject_id=warning.id, details={
                            "identifier": warning.identifier, "hazard": warning.hazard, "level": warning.level,
                            "status": warning.status, "targets": warning.targets, "sender": warning.sender,
                            "submitted_by": username(actor), "source": source})
    log.info("warning_submitted", warning_id=warning.id, identifier=warning.identifier, level=warning.level)


async def has_approver(session: AsyncSession, *, regions: list[Region]) -> bool:
    """An active leader account whose scope holds every target (a leader of the region or above it)."""
    common = set(region_service.ancestor_codes(regions[0].path))
    for r in regions[1:]:
        common &= set(region_service.ancestor_codes(r.path))
    return (await session.execute(select(User.id).where(
        User.role == "leader", User.active.is_(True), User.region_code.in_(common)).limit(1))).first() is not None


def username(actor: Actor) -> str:
    return actor.name.removeprefix("user:")


async def release(session: AsyncSession, *, warning: EarlyWarning, regions: list[Region], actor: Actor,
                  now: datetime, source: str, signoff: WarningSignoff | None = None) -> IssueResult:
    """The sending half of an issue: the first CAP revision, notices, messages, ledger, evacuation.

    Run at once by `issue_warning`, or by the leader's approval of a warning held for sign-off (then
    `signoff` names both people, and the ledger's issue entry carries them).
    """
    identifier, sender, snapshot, area = warning.identifier, warning.sender, warning.policy, warning.area_desc
    session.add(WarningRevision(warning_id=warning.id, revision=1, msg_type="alert", identifier=identifier,
                                references=None, sent_at=now, level=warning.level, title=warning.title,
                                description=warning.description, instruction=warning.instruction,
                                targets=warning.targets, area_desc=area, expires_at=warning.expires_at,
                                actor_user_id=actor.user_id))
    under = await responses.in_force(session, paths=[r.path for r in regions], hazard=warning.hazard)
    await responses.link_issued(session, responses=under, warning_id=warning.id, now=now)  # type: ignore[arg-type]
    count, floor = await notices.open_primary(session, warning=warning, target_paths=[r.path for r in regions],
                                              roles=list(snapshot["roles"]), now=now)
    new = and_(Notice.id > floor, Notice.reason == NoticeReason.primary)
    queued = await fanout.queue_person_messages(session, warning=warning, kind="alert", channels=snapshot["channels"],
                                                now=now, notice_filter=new)
    queued += await fanout.queue_broadcasts(session, warning=warning, kind="alert", now=now, regions=regions)
    roles = await _counts_by(session, Notice.role, Notice.warning_id == warning.id)
    by_channel = await _counts_by(session, OutboxMessage.channel, OutboxMessage.warning_id == warning.id)
    signed = {"submitted_by": signoff.submitter, "approved_by": signoff.decider} if signoff else {}
    await ledger.append_many(session, [
        {"at": now, "actor": actor.name, "action": "warning.issued", "subject_type": "warning",
         "subject_id": warning.id, "details": {"identifier": identifier, "hazard": warning.hazard,
                                               "level": warning.level, "status": warning.status,
                                               "targets": warning.targets, "sender": sender,
                                               "recipients": count, "source": source, **signed}},
        {"at": now, "actor": actor.name, "action": "policy.in_force", "subject_type": "warning",
         "subject_id": warning.id, "details": snapshot},
        {"at": now, "actor": actor.name, "action": "notices.created", "subject_type": "warning",
         "subject_id": warning.id, "details": {"count": count, "by_role": roles, "round": 1}},
        {"at": now, "actor": actor.name, "action": "messages.queued", "subject_type": "warning",
         "subject_id": warning.id, "details": {"kind": "alert", "revision": 1, "by_channel": by_channel}},
    ])
    # 转移避险: households in zones this hazard × level must clear, and special people/places (evacuation/).
    await evacuation.open_for_warning(session, warning=warning, target_paths=[r.path for r in regions], now=now)
    log.info("warning_issued", warning_id=warning.id, identifier=identifier, hazard=warning.hazard,
             level=warning.level, recipients=count, messages=queued)
    return IssueResult(warning=warning, recipient_count=count, messages_queued=queued)


async def issue_once(session: AsyncSession, *, key: str | None, data: WarningCreate, actor: Actor,
                     policy: PolicyBook, settings: Settings, now: datetime) -> IssueResult:
    """Issue, unless this user already issued with this idempotency key: then answer with that warning."""
    if not key:
        return await issue_warning(session, data=data, actor=actor, policy=policy, settings=settings, now=now)
    if actor.user_id is None:
        raise Invalid("idempotency keys need a user", "幂等键需要登录用户", field="Idempotency-Key")
    digest = hashlib.sha256(data.model_dump_json().encode()).hexdigest()
    earlier = (await session.execute(select(IssueRequest).where(
        IssueRequest.user_id == actor.user_id, IssueRequest.key == key))).scalar_one_or_none()
    if earlier is not None:
        if earlier.request_hash != digest:
            raise Conflict("this idempotency key was used for a different warning",
                           "该幂等键已用于另一条预警,请刷新表单后重新提交", field="Idempotency-Key")
        warning = await session.get(EarlyWarning, earlier.warning_id)
        return IssueResult(warning=warning, recipient_count=earlier.recipient_count,  # type: ignore[arg-type]
                           messages_queued=0, replayed=True)
    # Claimed before the work: a concurrent twin blocks on the unique key, then fails instead of issuing again.
    request = IssueRequest(user_id=actor.user_id, key=key, request_hash=digest, created_at=now)
    session.add(request)
    await session.flush()
    result = await issue_warning(session, data=data, actor=actor, policy=policy, settings=settings, now=now)
    request.warning_id, request.recipient_count = result.warning.id, result.recipient_count
    await session.flush()
    return result


# --- update, lift, expire ---------------------------------------------------------------------------------------

async def get_for_change(session: AsyncSession, *, warning_id: int, actor: Actor) -> EarlyWarning:
    """The warning, row-locked, which the actor may change only if every target is inside their scope."""
    warning = (await session.execute(select(EarlyWarning).where(EarlyWarning.id == warning_id)
                                     .with_for_update())).scalar_one_or_none()
    if warning is None:
        raise NotFound(f"warning {warning_id} not found", f"预警 {warning_id} 不存在", field="warning_id")
    paths = (await session.execute(select(Region.path).where(Region.code.in_(warning.targets)))).scalars().all()
    if not all(actor.covers(p) for p in paths):
        raise Forbidden("this warning reaches beyond your scope", "该预警范围超出您的管辖范围", field="warning_id")
    if warning.state != "active":
        raise Conflict(f"warning is {warning.state}; it can no longer be changed",
                       f"预警{STATE_CANNOT_CHANGE.get(warning.state, '已失效')},不能再更改", field="state")
    return warning


async def _new_revision(session: AsyncSession, *, warning: EarlyWarning, msg_type: str, actor: Actor,
                        now: datetime, identifier: str | None = None) -> WarningRevision:
    previous = (await session.execute(select(WarningRevision).where(
        WarningRevision.warning_id == warning.id).order_by(WarningRevision.revision.desc()).limit(1))).scalar_one()
    identifier = identifier or await identifiers.next_identifier(session, code=warning.sender_code, at=now)
    warning.revision += 1
    rev = WarningRevision(
        warning_id=warning.id, revision=warning.revision, msg_type=msg_type, identifier=identifier,
        references=cap_reference(warning.sender_code, previous.identifier, previous.sent_at), sent_at=now,
        level=warning.level, title=warning.title, description=warning.description,
        instruction=warning.instruction, targets=warning.targets, area_desc=warning.area_desc,
        expires_at=warning.expires_at, actor_user_id=actor.user_id)
    session.add(rev)
    return rev


def cap_reference(sender: str, identifier: str, sent: datetime) -> str:
    """CAP `references` entry: sender,identifier,sent."""
    return f"{sender},{identifier},{sent.astimezone(identifiers.CHINA_TZ).isoformat(timespec='seconds')}"


async def update_warning(session: AsyncSession, *, warning_id: int, data: WarningUpdate, actor: Actor,
                         policy: PolicyBook, settings: Settings, now: datetime,
                         identifier: str | None = None) -> UpdateResult:
    """更新: new level/text/targets; everyone reached hears it; an upgrade demands a fresh answer."""
    warning = await get_for_change(session, warning_id=warning_id, actor=actor)
    # The reason explains the change (ledger, and the messages once their templates use it); it is not one.
    fields = data.model_dump(exclude_unset=True, exclude_none=True, exclude={"reason"})
    if not fields:
        raise Invalid("nothing to update", "没有需要更新的内容", field="body")
    if data.expires_at is not None and data.expires_at <= now:
        raise Invalid("expires_at must be in the future", "失效时间必须晚于当前时间", field="expires_at")
    old_level = warning.level
    upgraded = data.level is not None and LEVEL_RANK[data.level] > LEVEL_RANK[old_level]
    regions = await resolve_targets(session, codes=data.targets or warning.targets, actor=actor)
    if data.level is not None:
        warning.level = data.level.value
    for f in ("title", "description", "instruction", "expires_at"):
        if f in fields:
            setattr(warning, f, fields[f])
    if data.targets is not None:
        warning.targets = [r.code for r in regions]
        warning.area_desc = area_description(regions)
        await session.execute(WarningTarget.__table__.delete().where(WarningTarget.warning_id == warning.id))
        await session.execute(insert(WarningTarget), [{"warning_id": warning.id, "region_code": r.code}
                                                     for r in regions])
    if data.level is not None and data.level.value != old_level and "instruction" not in fields:
        # Each level has its own guidance: an upgrade to red must not keep orange's words.
        warning.instruction = default_instruction(settings.templates_dir, warning.hazard, warning.level)
    if upgraded:
        # A higher level brings its own, stricter policy; earlier answers were to a lesser danger.
        region_name = str(warning.policy.get("region_name", ""))
        warning.policy = policy.snapshot(warning.hazard, warning.level, region_name=region_name)
        warning.ack_round += 1
    warning.updated_at = now
    await _new_revision(session, warning=warning, msg_type="update", actor=actor, now=now, identifier=identifier)
    snapshot = warning.policy
    if data.targets is not None:
        # People no longer covered stop being chased; they still hear the update below.
        await notices.close_open(session, warning_id=warning.id, now=now,
                                 outside_paths=[r.path for r in regions])
    if upgraded:
        await notices.restart_round(session, warning=warning, now=now)
    else:
        await notices.renew_deadlines(session, warning=warning, now=now)
    new_count, floor = await notices.open_primary(session, warning=warning, target_paths=[r.path for r in regions],
                                                  roles=list(snapshot["roles"]), now=now)
    await fanout.cancel_queued(session, warning_id=warning.id, now=now, reason="superseded",
                               kinds=("alert", "update"), revision_below=warning.revision)
    primary = Notice.reason == NoticeReason.primary
    channels = snapshot["channels"]
    # Those reached before hear the update; those the update newly covers get the full alert.
    queued = await fanout.queue_person_messages(session, warning=warning, kind="update", channels=channels,
                                                now=now, notice_filter=and_(primary, Notice.id <= floor))
    queued += await fanout.queue_person_messages(session, warning=warning, kind="alert", channels=channels,
                                                 now=now, notice_filter=and_(primary, Notice.id > floor))
    queued += await fanout.queue_broadcasts(session, warning=warning, kind="update", now=now, regions=regions)
    await ledger.append_many(session, [
        {"at": now, "actor": actor.name, "action": "warning.updated", "subject_type": "warning",
         "subject_id": warning.id, "details": {"revision": warning.revision, "changes": _jsonable(fields),
                                               "reason": data.reason,
                                               "from_level": old_level, "upgraded": upgraded,
                                               "new_recipients": new_count}},
        *([{"at": now, "actor": actor.name, "action": "policy.in_force", "subject_type": "warning",
            "subject_id": warning.id, "details": snapshot}] if upgraded else []),
        {"at": now, "actor": actor.name, "action": "messages.queued", "subject_type": "warning",
         "subject_id": warning.id, "details": {"kind": "update", "revision": warning.revision, "count": queued}},
    ])
    # 转移避险: an upgrade or a wider area may reach zones the warning did not reach before (evacuation/).
    await evacuation.open_for_warning(session, warning=warning, target_paths=[r.path for r in regions], now=now)
    log.info("warning_updated", warning_id=warning.id, revision=warning.revision, upgraded=upgraded,
             new_recipients=new_count, messages=queued)
    return UpdateResult(warning=warning, new_recipients=new_count, upgraded=upgraded, messages_queued=queued)


async def lift_warning(session: AsyncSession, *, warning_id: int, data: WarningLift, actor: Actor,
                       now: datetime, identifier: str | None = None) -> EarlyWarning:
    """解除: stop all calling; tell everyone already reached that it is lifted."""
    reason = (data.reason or data.description or "").strip()
    if not reason:
        raise Invalid("a lift needs its reason (reason), e.g. 台风已减弱",
                      "解除预警须填写解除原因(reason),如“台风已减弱”", field="reason")
    warning = await get_for_change(session, warning_id=warning_id, actor=actor)
    warning.state, warning.lifted_at, warning.updated_at = "lifted", now, now
    rev = await _new_revision(session, warning=warning, msg_type="cancel", actor=actor, now=now,
                              identifier=identifier)
    # The lift revision's description is its reason: every lift message (SMS, e-mail, loudspeaker) says it.
    rev.description = reason
    closed = await notices.end_warning(session, warning_id=warning.id, now=now)
    cancelled = await fanout.cancel_queued(session, warning_id=warning.id, now=now, reason="lifted")
    reached = exists().where(OutboxMessage.notice_id == Notice.id,
                             OutboxMessage.status.in_(("sending", "sent", "delivered")))
    lift_channels = [c for c in warning.policy["channels"] if c in ("sms", "email")] or ["sms"]
    queued = await fanout.queue_person_messages(session, warning=warning, kind="cancel", channels=lift_channels,
                                                now=now, notice_filter=reached)
    regions = (await session.execute(select(Region).where(Region.code.in_(warning.targets)))).scalars().all()
    queued += await fanout.queue_broadcasts(session, warning=warning, kind="cancel", now=now, regions=list(regions),
                                            only_reached=True)
    await ledger.append(session, at=now, actor=actor.name, action="warning.lifted", subject_type="warning",
                        subject_id=warning.id, details={"revision": warning.revision, "reason": reason,
                                                        "notices_closed": closed, "messages_cancelled": cancelled,
                                                        "lift_messages": queued})
    log.info("warning_lifted", warning_id=warning.id, closed=closed, cancelled=cancelled, lift_messages=queued)
    return warning


async def expire_due(session: AsyncSession, *, now: datetime, limit: int = 100) -> list[int]:
    """Warnings whose validity ran out: end their calling and unsent messages. Returns their ids."""
    ids = list((await session.execute(select(EarlyWarning.id).where(
        EarlyWarning.state == WarningState.active, EarlyWarning.expires_at.is_not(None),
        EarlyWarning.expires_at <= now)
        .order_by(EarlyWarning.id).limit(limit).with_for_update(skip_locked=True))).scalars())
    for wid in ids:
        await session.execute(update(EarlyWarning).where(EarlyWarning.id == wid).values(state="expired",
                                                                                        updated_at=now))
        closed = await notices.end_warning(session, warning_id=wid, now=now)
        cancelled = await fanout.cancel_queued(session, warning_id=wid, now=now, reason="expired")
        await ledger.append(session, at=now, actor="system:expiry", action="warning.expired",
                            subject_type="warning", subject_id=wid,
                            details={"notices_closed": closed, "messages_cancelled": cancelled})
        log.info("warning_expired", warning_id=wid, closed=closed, cancelled=cancelled)
    return ids


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in fields.items()}
