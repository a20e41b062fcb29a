"""Charts drawn server-side as inline SVG: no scripts, no CDN, printable, readable without JavaScript."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

GOOD, FAIR, POOR = "#2e7d32", "#ef6c00", "#c62828"


def rate_colour(rate: float | None) -> str:
    if rate is None:
        return "#9e9e9e"
    return GOOD if rate >= 0.95 else FAIR if rate >= 0.8 else POOR


def _minutes(seconds: float) -> str:
    m = seconds / 60
    return f"{m:.0f}" if m >= 10 or m == int(m) else f"{m:.1f}"


def ack_curve(timeline: dict[str, Any], *, required: int, width: int = 760, height: int = 320) -> Markup:
    """Cumulative answers over time (as a share of those required), with the deadline as a red line."""
    left, right, top, bottom = 56, 20, 20, 44
    pw, ph = width - left - right, height - top - bottom
    points = timeline["points"]
    deadline = timeline.get("deadline_seconds")
    t_max = max([p["t"] for p in points] + [(deadline or 0) * 1.1, 60])
    total = max(required, 1)

    def x(t: float) -> float:
        return left + pw * t / t_max

    def y(n: float) -> float:
        return top + ph * (1 - n / total)

    parts = [f'<svg id="ack-curve" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="叫应累计曲线">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ddd"/>']
    for share in (0, 0.25, 0.5, 0.75, 1.0):
        yy = y(total * share)
        parts.append(f'<line class="grid" x1="{left}" y1="{yy:.1f}" x2="{left + pw}" y2="{yy:.1f}" '
                     f'stroke="#e0e0e0"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" font-size="11" text-anchor="end">'
                     f'{share * 100:.0f}%</text>')
    step = _tick_step(t_max)
    t = 0.0
    while t <= t_max + 1e-6:
        parts.append(f'<text x="{x(t):.1f}" y="{top + ph + 16}" font-size="11" text-anchor="middle">'
                     f'{_minutes(t)}</text>')
        t += step
    parts.append(f'<text x="{left + pw / 2}" y="{height - 6}" font-size="12" text-anchor="middle">'
                 f'发布后分钟数</text>')
    # A step curve: the count holds until the next bucket's answers arrive.
    coords = []
    prev = 0
    for p in points:
        coords.append(f"{x(p['t']):.1f},{y(prev):.1f}")
        coords.append(f"{x(p['t']):.1f},{y(p['acknowledged']):.1f}")
        prev = p["acknowledged"]
    parts.append(f'<polyline class="curve" fill="none" stroke="#1565c0" stroke-width="2.5" '
                 f'points="{" ".join(coords)}"><title>累计叫应人数</title></polyline>')
    if deadline:
        dx = x(deadline)
        parts.append(f'<line class="deadline" x1="{dx:.1f}" y1="{top}" x2="{dx:.1f}" y2="{top + ph}" '
                     f'stroke="{POOR}" stroke-width="2" stroke-dasharray="6 4"/>')
        parts.append(f'<text class="deadline-label" x="{dx + 4:.1f}" y="{top + 14}" font-size="12" '
                     f'fill="{POOR}">叫应期限 {_minutes(deadline)} 分钟</text>')
    final = points[-1]["acknowledged"] if points else 0
    parts.append(f'<text x="{left + pw - 4}" y="{y(final) - 6:.1f}" font-size="12" text-anchor="end" '
                 f'fill="#1565c0">已叫应 {final}/{required}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _tick_step(t_max: float) -> float:
    for minutes in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 240, 720, 1440):
        if t_max / (minutes * 60) <= 10:
            return minutes * 60
    return 2880 * 60


def rate_bars(rows: list[dict[str, Any]], *, chart_id: str = "town-rates", width: int = 760,
              label: str = "name") -> Markup:
    """Horizontal bars of the 叫应率, one per region as given (worst first is the caller's order)."""
    left, right, bar, gap, top = 170, 110, 18, 8, 10
    pw = width - left - right
    height = top * 2 + len(rows) * (bar + gap)
    parts = [f'<svg id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-label="叫应率">']
    for frac in (0.8, 0.95):
        gx = left + pw * frac
        parts.append(f'<line x1="{gx:.1f}" y1="{top / 2}" x2="{gx:.1f}" y2="{height - top / 2}" '
                     f'stroke="#bdbdbd" stroke-dasharray="3 3"/>')
    for i, r in enumerate(rows):
        yy = top + i * (bar + gap)
        rate = r.get("rate")
        w = pw * (rate or 0)
        name = escape(r.get(label) or r.get("code"))
        parts.append(f'<text x="{left - 8}" y="{yy + bar - 4}" font-size="12" text-anchor="end">'
                     f'{name}</text>')
        parts.append(f'<rect x="{left}" y="{yy}" width="{pw}" height="{bar}" fill="#f0f0f0"/>')
        parts.append(f'<rect class="bar" data-code="{escape(r.get("code"))}" x="{left}" y="{yy}" '
                     f'width="{w:.1f}" height="{bar}" fill="{rate_colour(rate)}">'
                     f'<title>{name}:{r["acknowledged"]}/{r["required"]}</title></rect>')
        text = "—" if rate is None else f"{rate * 100:.1f}%  ({r['acknowledged']}/{r['required']})"
        parts.append(f'<text x="{left + pw + 6}" y="{yy + bar - 4}" font-size="12">{text}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
