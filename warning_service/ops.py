"""Figures operators watch: backlog, lag and throughput, for /readyz and /metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.registry import ChannelRegistry
from warning_service.db import Database
from warning_service.delivery.models import DispatchWorker, OutboxMessage
from warning_service.delivery.providers import LATENCY_BUCKETS, OUTCOMES, ProviderStats
from warning_service.ledger.models import LedgerPending
from warning_service.notice.models import Notice


class DispatchCounters:
    """This process's dispatch totals by outcome (the database holds the truth; these show this process's pace)."""

    def __init__(self) -> None:
        self._totals: Counter[str] = Counter()

    def add(self, totals: Mapping[str, int]) -> None:
        self._totals.update(totals)

    def get(self, outcome: str) -> int:
        return self._totals[outcome]

    def lines(self) -> list[str]:
        """Prometheus text lines: one counter per outcome seen so far."""
        return ["# HELP warning_service_dispatched_total Messages this process handled, by outcome",
                "# TYPE warning_service_dispatched_total counter",
                *(f'warning_service_dispatched_total{{outcome="{k}"}} {v}' for k, v in sorted(self._totals.items()))]


async def lag_figures(session: AsyncSession, *, now: datetime) -> dict[str, Any]:
    """Age of the oldest overdue notice and queued message, the backlog sizes, and the messages stuck in
    'sending' past their lease (a worker died and nobody has put them back) — all index scans."""
    oldest_notice = (await session.execute(
        select(func.min(Notice.next_action_at)).where(Notice.next_action_at.is_not(None)))).scalar()
    oldest_msg = (await session.execute(select(func.min(OutboxMessage.next_attempt_at)).where(
        OutboxMessage.status == "queued"))).scalar()
    queued = (await session.execute(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.status == "queued"))).scalar_one()
    pending_ledger = (await session.execute(select(func.count()).select_from(LedgerPending))).scalar_one()
    stuck = (await session.execute(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.status == "sending", OutboxMessage.lease_until < now))).scalar_one()
    sending = (await session.execute(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.status == "sending"))).scalar_one()
    workers = (await session.execute(select(func.count()).select_from(DispatchWorker))).scalar_one()

    def age(t: datetime | None) -> float:
        return round(max(0.0, (now - t).total_seconds()), 3) if t else 0.0

    return {
        "oldest_overdue_notice_seconds": age(oldest_notice),
        "oldest_queued_message_seconds": age(oldest_msg),
        "outbox_queued": queued,
        "ledger_unsealed": pending_ledger,
        "outbox_sending": sending,
        "outbox_sending_past_lease": stuck,
        "dispatch_workers": workers,
    }


def lagging(figures: dict[str, Any], *, max_lag_seconds: float) -> list[str]:
    """Why readiness fails, if it does: messages stuck past their lease, or the queue lagging too far."""
    reasons = []
    if figures["outbox_sending_past_lease"]:
        reasons.append(f"{figures['outbox_sending_past_lease']} messages stuck in 'sending' past their lease")
    if figures["oldest_queued_message_seconds"] > max_lag_seconds:
        reasons.append(f"oldest due message waiting {figures['oldest_queued_message_seconds']:.0f} s "
                       f"(> {max_lag_seconds:g} s)")
    return reasons


async def render_metrics(*, db: Database, now: datetime, counters: DispatchCounters,
                         providers: list[str] | None = None) -> str:
    """Prometheus text: the database's backlog and lag figures, this process's counters, then the providers'
    lines (`provider_metric_lines`) when given."""
    lines: list[str] = []
    async with db.session() as s:
        figures = await lag_figures(s, now=now)
        by_status = (await s.execute(select(OutboxMessage.channel, OutboxMessage.status, func.count())
                                     .group_by(OutboxMessage.channel, OutboxMessage.status))).all()
        notices = (await s.execute(select(Notice.state, func.count()).group_by(Notice.state))).all()
    help_ = {
        "oldest_overdue_notice_seconds": "Age of the oldest notice whose next escalation action is due",
        "oldest_queued_message_seconds": "Age of the oldest queued outbox message that is due",
        "outbox_queued": "Messages waiting in the outbox",
        "ledger_unsealed": "Ledger decisions not yet chained",
        "outbox_sending": "Messages held by a dispatcher (claimed, being sent)",
        "outbox_sending_past_lease": "Messages in 'sending' past their lease (a dead worker's, not yet put back)",
        "dispatch_workers": "Dispatch workers registered (beating or not yet found gone)",
    }
    for key, value in figures.items():
        lines += [f"# HELP warning_service_{key} {help_[key]}", f"# TYPE warning_service_{key} gauge",
                  f"warning_service_{key} {value}"]
    lines += ["# HELP warning_service_outbox_messages Outbox messages by channel and status",
              "# TYPE warning_service_outbox_messages gauge"]
    lines += [f'warning_service_outbox_messages{{channel="{c}",status="{st}"}} {n}' for c, st, n in by_status]
    lines += ["# HELP warning_service_notices Notices by state", "# TYPE warning_service_notices gauge"]
    lines += [f'warning_service_notices{{state="{st}"}} {n}' for st, n in notices]
    lines += counters.lines()
    lines += providers or []
    return "\n".join(lines) + "\n"


@dataclass
class ProviderHealth:
    """Breaker state per channel and provider, and what readiness makes of it."""

    states: dict[str, dict[str, str]]  # channel → provider → "open" | "closed" | "no_breaker"
    degraded: list[str]  # a provider of a chain is open: messages go to the next one
    down: list[str]  # every provider of a channel is open: nothing goes out on it

    @property
    def open_pairs(self) -> set[tuple[str, str]]:
        return {(c, p) for c, ps in self.states.items() for p, st in ps.items() if st == "open"}


async def provider_health(channels: ChannelRegistry) -> ProviderHealth:
    """Only failover chains have breakers (a lone provider is retried by the dispatcher's backoff instead)."""
    providers = channels.providers()
    breakers = channels.breakers
    chained = sorted({p for c, ps in providers.items() if channels.chained(c) for p in ps})
    is_open = await breakers.refresh(chained) if breakers is not None else {}
    states: dict[str, dict[str, str]] = {}
    degraded: list[str] = []
    down: list[str] = []
    for channel, names in sorted(providers.items()):
        if not channels.chained(channel):
            states[channel] = dict.fromkeys(names, "no_breaker")
            continue
        states[channel] = {p: "open" if is_open.get(p) else "closed" for p in names}
        opened = [p for p in names if is_open.get(p)]
        if opened and len(opened) == len(names):
            down.append(f"{channel}: every provider's breaker is open ({', '.join(names)})")
        elif opened:
            rest = [p for p in names if p not in opened]
            degraded.append(f"{channel}: breaker open for {', '.join(opened)}; messages go to {', '.join(rest)}")
    return ProviderHealth(states, degraded, down)


async def provider_metric_lines(channels: ChannelRegistry, stats: ProviderStats,
                                limits: Mapping[str, float]) -> list[str]:
    """Per channel and provider: outcomes, the latency histogram, the breaker state, the configured rate."""
    health = await provider_health(channels)
    pairs = [(c, p) for c, ps in sorted(channels.providers().items()) for p in ps]
    totals = await stats.totals(pairs)
    lines = ["# HELP warning_service_provider_messages_total Messages handed to a provider, by outcome "
             "(accepted; failed; not_sent = certainly not taken, handed to the next provider; breaker_open = "
             "skipped while its breaker was open), every worker",
             "# TYPE warning_service_provider_messages_total counter"]
    for (c, p), f in totals.items():
        lines += [f'warning_service_provider_messages_total{{channel="{c}",provider="{p}",outcome="{o}"}} '
                  f'{f.counts.get(o, 0)}' for o in OUTCOMES]
    lines += ["# HELP warning_service_provider_send_seconds Time from a message's turn at the provider to its "
              "answer (batching wait included)", "# TYPE warning_service_provider_send_seconds histogram"]
    for (c, p), f in totals.items():
        labels = f'channel="{c}",provider="{p}"'
        running = 0
        for bound, n in zip([*map(str, LATENCY_BUCKETS), "+Inf"], f.buckets, strict=True):
            running += n
            lines.append(f'warning_service_provider_send_seconds_bucket{{{labels},le="{bound}"}} {running}')
        lines += [f"warning_service_provider_send_seconds_sum{{{labels}}} {f.seconds:.6f}",
                  f"warning_service_provider_send_seconds_count{{{labels}}} {running}"]
    lines += ["# HELP warning_service_provider_breaker_open 1 while the provider's breaker is open (failover "
              "chains only)", "# TYPE warning_service_provider_breaker_open gauge"]
    lines += [f'warning_service_provider_breaker_open{{channel="{c}",provider="{p}"}} '
              f'{int((c, p) in health.open_pairs)}' for c, p in pairs]
    lines += ["# HELP warning_service_provider_rate_limit Messages per second a provider may be sent "
              "(PROVIDER_RATE_LIMITS, shared by every worker)", "# TYPE warning_service_provider_rate_limit gauge"]
    lines += [f'warning_service_provider_rate_limit{{provider="{p}"}} {r:g}' for p, r in sorted(limits.items())]
    return lines
