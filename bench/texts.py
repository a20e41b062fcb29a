"""SMS segment counts of the primary text for every hazard × level, as rendered by the real templates.

    python -m bench.texts [--base-url https://yj.example.gov.cn] [--description-chars 60] [--kind alert]

Renders each hazard × level for a village target (松门镇南城村) with a description of the given length, a
three-minute deadline and a real-length acknowledgment link, and prints the characters, the SMS parts and
how many description characters survived the fitting (the reply instruction and the link are never cut).
Target: every cell ≤ 2 parts (≤ 134 characters).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from channels.base import sms_segments
from warning_service.config import Settings
from warning_service.early_warning.guidance import default_instruction
from warning_service.early_warning.messages import Place, render_preview
from warning_service.early_warning.models import HAZARD_ZH, EarlyWarning, Hazard, Level, WarningRevision
from warning_service.early_warning.policy import load_policy

NOW = datetime(2026, 7, 1, 10, 39, tzinfo=UTC)
PLACES = [Place("331081", "温岭市", "county", "/33/3310/331081/"),
          Place("331081105", "松门镇", "town", "/33/3310/331081/331081105/"),
          Place("331081105201", "南城村", "village", "/33/3310/331081/331081105/331081105201/")]
TEXT = ("受强对流云团影响预计未来三小时松门镇南城村及周边将出现五十毫米以上"
        "短时强降水局地伴有雷电大风山区溪沟水位将快速上涨") * 4


def render(settings: Settings, hazard: str, level: str, *, description: str, kind: str, previous_level: str | None,
           extended: bool = False) -> tuple[str, str]:
    snap = load_policy(settings.policy_file).snapshot(hazard, level, region_name="温岭市")
    instruction = default_instruction(settings.templates_dir, hazard, level)
    expires = NOW + timedelta(hours=6)
    w = EarlyWarning(id=1, identifier="33108100000000_20260701183900_1", sender=snap["issuer"],
                     sender_code="33108100000000", hazard=hazard, level=level, status="actual", state="active",
                     title="", description=description, instruction=instruction, issued_at=NOW, effective_at=NOW,
                     expires_at=expires, targets=["331081105201"], area_desc="南城村", policy=snap, revision=1,
                     ack_round=1, reply_code=10, updated_at=NOW)
    rev = WarningRevision(warning_id=1, revision=1, msg_type="alert", identifier=w.identifier, sent_at=NOW,
                          level=level, title="", description=description, instruction=instruction,
                          targets=w.targets, area_desc="南城村", expires_at=expires)
    prev = None
    if kind != "alert":
        prev = rev.model_copy(update={"level": previous_level or level})
        rev = rev.model_copy(update={"revision": 2, "msg_type": "cancel" if kind == "cancel" else "update",
                                     "description": "过程结束" if kind == "cancel" else description,
                                     "expires_at": expires + timedelta(hours=3) if extended else expires})
    m = render_preview(settings=settings, warning=w, revision=rev, previous=prev,
                       kind="cancel" if kind == "cancel" else ("alert" if kind == "alert" else "update"),
                       channel="sms", now=NOW, places=PLACES, deadline=NOW + timedelta(minutes=3))
    return m.body, m.metadata.get("part.description", "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default="https://yj.wl.gov.cn")
    ap.add_argument("--description-chars", type=int, default=60)
    ap.add_argument("--kind", default="alert", choices=("alert", "upgrade", "extend", "cancel"))
    args = ap.parse_args()
    settings = Settings(environment="test", secret_key="bench-texts-secret", public_base_url=args.base_url,
                        database_url="sqlite://")
    description = TEXT[: args.description_chars]
    lower = {"red": "orange", "orange": "yellow", "yellow": "blue", "blue": "blue"}
    print(f"primary SMS ({args.kind}), description {args.description_chars} chars, link base {args.base_url}")
    print("cells: characters/parts/description characters kept")
    print(f"{'hazard':<22}" + "".join(f"{lv.value:>14}" for lv in Level))
    worst = 0
    for hazard in Hazard:
        cells = []
        for level in Level:
            body, desc = render(settings, hazard.value, level.value, description=description, kind=args.kind,
                                previous_level=lower[level.value] if args.kind == "upgrade" else None,
                                extended=args.kind == "extend")
            parts = sms_segments(body)
            worst = max(worst, parts)
            kept = len(desc.rstrip("…。"))
            cells.append(f"{len(body)}/{parts}/{kept}")
        print(f"{hazard.value + ' ' + HAZARD_ZH[hazard.value]:<20}" + "".join(f"{c:>14}" for c in cells))
    print(f"most parts: {worst}  ({'OK' if worst <= settings.sms_max_segments else 'OVER'} "
          f"against SMS_MAX_SEGMENTS={settings.sms_max_segments})")
    body, _ = render(settings, "rainstorm", "red", description=description, kind="alert", previous_level=None)
    print(f"example: {body}")


if __name__ == "__main__":
    main()
