"""Golden texts: what each channel says for every hazard × level × kind, and that the primary SMS fits two parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from channels.base import sms_segments
from warning_service.config import Settings
from warning_service.early_warning import texts
from warning_service.early_warning.guidance import check_lines, default_instruction
from warning_service.early_warning.messages import Place, render_preview
from warning_service.early_warning.models import HAZARD_ZH, EarlyWarning, Hazard, Level, WarningRevision
from warning_service.early_warning.policy import load_policy

NOW = datetime(2026, 7, 1, 10, 39, tzinfo=UTC)  # 18:39 Beijing time
PLACES = [Place("33", "浙江省", "province", "/33/"), Place("3310", "台州市", "city", "/33/3310/"),
          Place("331081", "温岭市", "county", "/33/3310/331081/"),
          Place("331081105", "松门镇", "town", "/33/3310/331081/331081105/"),
          Place("331081105201", "南城村", "village", "/33/3310/331081/331081105/331081105201/"),
          Place("331081105202", "南城社区", "village", "/33/3310/331081/331081105/331081105202/")]
DESC60 = ("受强对流云团影响,预计未来3小时松门镇南城村及周边将出现50毫米以上短时强降水,"
          "局地伴有雷电大风,山区溪沟水位将快速上涨")[:60]
BOOK = load_policy(None)
KINDS = {  # kind → (outbox kind, level before, expiry changed)
    "alert": ("alert", None, False), "update": ("update", "same", False), "upgrade": ("update", "lower", False),
    "downgrade": ("update", "higher", False), "extend": ("update", "same", True), "cancel": ("cancel", "same", False),
}
LOWER = {"red": "orange", "orange": "yellow", "yellow": "blue", "blue": "blue"}
HIGHER = {"blue": "yellow", "yellow": "orange", "orange": "red", "red": "red"}


@pytest.fixture(scope="module")
def cfg() -> Settings:
    return Settings(environment="test", secret_key="golden-text-secret", public_base_url="http://testserver",
                    database_url="sqlite://")


def make(hazard: str, level: str, *, kind: str = "alert", description: str = DESC60, status: str = "actual",
         reason: str = "强降雨过程已结束") -> tuple[EarlyWarning, WarningRevision, WarningRevision | None]:
    snap = BOOK.snapshot(hazard, level, region_name="温岭市")
    outbox_kind, before, extended = KINDS[kind]
    w = EarlyWarning(id=7, identifier="33108100000000_20260701183900_1", sender=snap["issuer"],
                     sender_code="33108100000000", hazard=hazard, level=level, status=status, state="active",
                     title="t", description=description, instruction=default_instruction(
                         Settings().templates_dir, hazard, level), issued_at=NOW, effective_at=NOW,
                     expires_at=NOW + timedelta(hours=6), targets=["331081105201"], area_desc="南城村", policy=snap,
                     revision=1, ack_round=1, reply_code=10, updated_at=NOW)
    first = WarningRevision(warning_id=7, revision=1, msg_type="alert", identifier=w.identifier, sent_at=NOW,
                            level=level, title="t", description=description, instruction=w.instruction,
                            targets=w.targets, area_desc="南城村", expires_at=w.expires_at)
    if before is None:
        return w, first, None
    prev_level = {"same": level, "lower": LOWER[level], "higher": HIGHER[level]}[before]
    prev = first.model_copy(update={"level": prev_level})
    rev = first.model_copy(update={
        "revision": 2, "msg_type": "cancel" if outbox_kind == "cancel" else "update", "sent_at": NOW,
        "description": reason if outbox_kind == "cancel" else description,
        "expires_at": w.expires_at + timedelta(hours=3) if extended else w.expires_at})
    return w, rev, prev


def sms(cfg, hazard, level, kind="alert", **kw):
    w, rev, prev = make(hazard, level, kind=kind, **{k: v for k, v in kw.items() if k in ("description", "status")})
    return render_preview(settings=cfg, warning=w, revision=rev, previous=prev, kind=KINDS[kind][0],
                          channel=kw.get("channel", "sms"), now=NOW, places=PLACES,
                          deadline=NOW + timedelta(minutes=3), notice_state=kw.get("notice_state", "pending"),
                          village_code=kw.get("village_code", "331081105201"))


# --- golden texts -----------------------------------------------------------------------------------------

def test_red_rainstorm_sms_reads_as_a_county_office_writes_it(cfg):
    m = sms(cfg, "rainstorm", "red")
    link = m.metadata["part.link"]
    assert m.body == (f"【温岭防指】转发温岭市气象台:18:39发布松门镇南城村暴雨红色预警:{m.metadata['part.description']}"
                      f"立即到岗,组织危险区人员立即转移。请18:42前回1确认 {link}")
    assert m.body.count("【") == 1 and "立即转移" in m.body and ";" not in m.body
    assert link.startswith("http://testserver/a/") and m.metadata["segments"] == "2"


def test_red_rainstorm_voice_reads_times_and_places_without_separators(cfg):
    m = sms(cfg, "rainstorm", "red", channel="voice")
    assert m.body == (f"您好,这里是温岭市防汛防台抗旱指挥部。转发温岭市气象台:18时39分发布松门镇南城村暴雨红色预警。"
                      f"{DESC60}。立即到岗,组织危险区人员立即转移。确认收到请按1。")
    assert "/" not in m.body and ":" not in m.body.split("。", 1)[1].replace("气象台:", "")


def test_loudspeaker_speaks_to_residents_of_a_community_and_repeats_three_times(cfg):
    village = sms(cfg, "typhoon", "red", channel="broadcast", village_code="331081105201")
    community = sms(cfg, "typhoon", "red", channel="broadcast", village_code="331081105202")
    assert village.body.startswith("各位村民请注意,各位村民请注意:"
                                   "温岭市防汛防台抗旱指挥部18时39分发布松门镇南城村台风红色预警。")
    assert community.body.startswith("各位居民请注意,各位居民请注意:")
    # public instructions only: no 到岗, 值班 or 责任人 read to the street
    assert not any(word in village.body for word in ("到岗", "值班", "责任人"))
    assert village.metadata["repeat"] == "3"


def test_loudspeaker_lift_gives_the_reason_and_keeps_the_moved_away(cfg):
    m = sms(cfg, "typhoon", "red", kind="cancel", channel="broadcast")
    assert "解除松门镇南城村台风红色预警。强降雨过程已结束。已转移的群众请暂不返回,等候村(社区)通知。" in m.body


@pytest.mark.parametrize("kind,words", [
    ("upgrade", "18:39松门镇南城村山洪预警升级为橙色"), ("downgrade", "18:39松门镇南城村山洪预警降级为橙色"),
    ("extend", "18:39延长松门镇南城村山洪橙色预警至7月2日03:39"), ("update", "18:39更新松门镇南城村山洪橙色预警"),
    ("cancel", "18:39解除松门镇南城村山洪橙色预警。强降雨过程已结束。"),
])
def test_updates_say_what_changed_in_office_words(cfg, kind, words):
    assert words in sms(cfg, "mountain_torrent", "orange", kind).body


def test_someone_who_answered_hears_an_update_as_information(cfg):
    m = sms(cfg, "rainstorm", "red", "update", notice_state="acknowledged")
    assert "回1" not in m.body and "您已确认,无需回复。" in m.body and "/a/" not in m.body
    assert m.metadata["part.reply"] == "" and m.metadata["part.link"] == ""


def test_typhoon_blue_does_not_order_evacuation(cfg):
    blue, red = sms(cfg, "typhoon", "blue"), sms(cfg, "typhoon", "red")
    assert "转移" not in blue.metadata["part.guidance"] and "立即转移" in red.metadata["part.guidance"]


def test_lift_sms_carries_its_reason(cfg):
    m = sms(cfg, "typhoon", "red", "cancel", description=DESC60)
    assert m.body.endswith("解除松门镇南城村台风红色预警。强降雨过程已结束。") and m.metadata["part.reason"]


def test_exercise_is_marked_and_still_fits(cfg):
    m = sms(cfg, "typhoon", "red", status="exercise")
    assert m.body.startswith("【演练】【温岭防指】") and sms_segments(m.body) <= 2


def test_date_is_printed_only_when_not_today():
    assert texts.clock(NOW, now=NOW) == "18:39"
    assert texts.clock(NOW, now=NOW + timedelta(days=1)) == "7月1日18:39"
    assert texts.clock(datetime(2026, 7, 1, 16, 30, tzinfo=UTC), now=NOW) == "7月2日00:30"  # Beijing's tomorrow


def test_signs_places_and_greetings():
    assert texts.short_sign("温岭市防汛防台抗旱指挥部") == "温岭防指"
    assert texts.short_sign("永宁县防汛抗旱指挥部") == "永宁防指"
    assert texts.place_name(["松门镇", "南城村", "南城村第1网格"]) == "松门镇南城村第1网格"
    assert texts.area_text([["松门镇", "南城村"], ["松门镇", "横湖村"]]) == "松门镇南城村、横湖村"
    three = [["松门镇", "南城村"], ["箬横镇", "东浦村"], ["温岭市"]]
    assert texts.area_text(three) == "松门镇南城村、箬横镇东浦村等3地"
    assert texts.public_greeting("中城居委会") == "各位居民" and texts.public_greeting("南城村") == "各位村民"


def test_guidance_lines_are_complete_and_short():
    assert check_lines(Settings().templates_dir) == []
    for hazard in Hazard:
        for level in Level:
            full = default_instruction(Settings().templates_dir, hazard.value, level.value)
            assert not any(line.endswith((";", "；")) for line in full.splitlines()), (hazard, level)


# --- every hazard × level × kind fits two SMS parts -------------------------------------------------------

@pytest.mark.parametrize("hazard", [h.value for h in Hazard])
@pytest.mark.parametrize("level", [lv.value for lv in Level])
@pytest.mark.parametrize("kind", list(KINDS))
def test_primary_sms_fits_two_parts_and_keeps_reply_and_link(cfg, hazard, level, kind):
    m = sms(cfg, hazard, level, kind)
    segments = sms_segments(m.body)
    assert segments == int(m.metadata["segments"]) <= 2, m.body
    assert len(m.body) <= 134
    assert m.body.startswith("【温岭防指】") and HAZARD_ZH[hazard] in m.body and "松门镇南城村" in m.body
    assert "18:39" in m.body and "2026年" not in m.body and ";" not in m.body
    if kind == "cancel":
        assert "强降雨过程已结束" in m.body
    else:
        # the reply instruction and the full link are never cut; the description gives way
        assert m.metadata["part.reply"] in m.body and m.body.endswith(m.metadata["part.link"])
        assert m.metadata["part.guidance"] in m.body
        assert DESC60.startswith(m.metadata["part.description"].rstrip("…").rstrip("。"))
        # a description gives way only as far as it must: one character more would not fit
        if m.metadata["part.description"].endswith("…"):
            assert len(m.body) >= 133


def test_a_long_description_is_cut_never_the_reply_or_link(cfg):
    m = sms(cfg, "rainstorm", "red", description="特大暴雨" * 200)
    assert sms_segments(m.body) == 2 and m.body.endswith(m.metadata["part.link"]) and "请18:42前回1确认" in m.body
    assert m.metadata["part.description"].endswith("…")


def test_structured_parts_are_available_for_provider_templates(cfg):
    md = sms(cfg, "rainstorm", "red").metadata
    assert {k: md[f"part.{k}"] for k in ("sign", "area", "hazard", "level", "action", "deadline")} == {
        "sign": "温岭防指", "area": "松门镇南城村", "hazard": "暴雨", "level": "红色", "action": "发布",
        "deadline": "18:42"}


def test_configured_sign_and_hazard_name(cfg):
    custom = cfg.model_copy(update={"sms_sign": "温岭应急", "hazard_names": "forest_fire=森林草原火险"})
    w, rev, prev = make("forest_fire", "red")
    m = render_preview(settings=custom, warning=w, revision=rev, kind="alert", channel="sms", now=NOW,
                       places=PLACES, deadline=NOW + timedelta(minutes=3))
    assert m.body.startswith("【温岭应急】18:39发布松门镇南城村森林草原火险红色预警") and "转发" not in m.body
    assert w.sender == "温岭市森林防灭火指挥部"


def test_mountain_torrent_levels_may_go_by_what_people_must_do(cfg, tmp_path):
    f = tmp_path / "policy.toml"
    f.write_text('[hazards.mountain_torrent.orange]\nlevel_name = "准备转移"\n'
                 '[hazards.mountain_torrent.red]\nlevel_name = "立即转移"\n', encoding="utf-8")
    book = load_policy(f)
    for level, name in (("orange", "准备转移"), ("red", "立即转移")):
        w, rev, _ = make("mountain_torrent", level)
        w.policy = book.snapshot("mountain_torrent", level, region_name="温岭市")
        m = render_preview(settings=cfg, warning=w, revision=rev, kind="alert", channel="sms", now=NOW,
                           places=PLACES, deadline=NOW + timedelta(minutes=3))
        assert f"山洪{name}预警" in m.body and "色预警" not in m.body
        assert sms_segments(m.body) <= 2
    w, rev, _ = make("mountain_torrent", "red")  # not configured: the colour, as everywhere else
    assert "山洪红色预警" in render_preview(settings=cfg, warning=w, revision=rev, kind="alert", channel="sms",
                                          now=NOW, places=PLACES, deadline=NOW + timedelta(minutes=3)).body
