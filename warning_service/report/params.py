"""Query parameters auditors type by hand: dates and times in Beijing time unless they say otherwise."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

from warning_service.errors import Invalid

# County offices work in China Standard Time; a bare date or a time without an offset means Beijing time.
CST = timezone(timedelta(hours=8), "CST")


def parse_when(value: str | None, *, field: str, end_of_day: bool = False) -> datetime | None:
    """'2026-07-01', '2026-07-01T08:00', '2026-07-01T00:00:00Z' → aware UTC datetime.

    A bare date means the start of that day in Beijing, or with `end_of_day` the start of the next one,
    so `to=2026-07-31` includes the whole of 31 July.
    """
    if value is None or value == "":
        return None
    raw = value.strip()
    try:
        if len(raw) == 10:
            d = date.fromisoformat(raw)
            start = datetime.combine(d, time(0), tzinfo=CST)
            return (start + timedelta(days=1) if end_of_day else start).astimezone(UTC)
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise Invalid(f"{field} must be a date (2026-07-01) or an ISO date-time (2026-07-01T08:00+08:00), "
                      f"not {value!r}",
                      f"{field} 应为日期(如 2026-07-01)或 ISO 时间(如 2026-07-01T08:00+08:00),"
                      f"而不是 {value!r}",
                      field=field) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=CST)
    return parsed.astimezone(UTC)


def check_period(since: datetime | None, until: datetime | None, *, max_days: int | None = None,
                 from_field: str = "from") -> None:
    """422 when the period runs backwards or is longer than `max_days`."""
    if since and until and since >= until:
        raise Invalid("from must be before to", "开始时间应早于结束时间", field=from_field)
    if max_days and since and until and until - since > timedelta(days=max_days):
        raise Invalid(f"the period may be at most {max_days} days", f"统计区间不能超过 {max_days} 天",
                      field=from_field)
