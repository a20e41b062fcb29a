"""The one vocabulary of Chinese labels shown to people: every page, report, export and message reads here.

An auditor compares the board, the report and the exported table side by side; a role or a state
named two ways ("村级责任人" on one, "村级防汛责任人" on the other) reads as two different things. The
terms follow the 预警叫应 platforms' own words (see the glossary in the README). This module imports
nothing from the features, so any of them may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType


def _frozen(d: dict[str, str]) -> Mapping[str, str]:
    return MappingProxyType(d)


ROLE = _frozen({
    "grid_responsible": "网格责任人",
    "village_responsible": "村级防汛责任人",
    "town_responsible": "乡镇防汛责任人",
    "county_responsible": "县级防汛责任人",
    "disaster_info_officer": "灾害信息员",
    "geo_hazard_monitor": "地质灾害监测员",
    "torrent_warner": "山洪灾害预警员",
    "shelter_manager": "避灾安置场所管理员",
    "village_cadre": "驻村干部",
    "danger_house_liaison": "危房联络员",
    "county_duty": "县防指值班室",
    "duty_leader": "带班领导",
    "duty_officer": "值班员",
    "member_unit": "成员单位联络员",
})
# Seats of a duty-room shift ("1+2" 值班值守).
DUTY_SEAT = _frozen({"leader": "带班领导", "officer": "值班员"})

# Recipient states as real 叫应 platforms show them.
NOTICE_STATE = _frozen({"pending": "待叫应", "delivered": "已送达", "acknowledged": "已叫应",
                        "timed_out": "超时未叫应", "closed": "已结束未叫应"})
NOTICE_REASON = _frozen({"primary": "直达", "deputy": "B岗叫应", "escalation": "逐级上报",
                         "duty_room": "值班室兜底", "duty_watch": "值班室知会", "attendance": "到岗确认"})

# How an answer came in.
ACK_PATH = _frozen({"link": "链接确认", "sms_reply": "短信回复", "voice_key": "电话按键", "proxy": "代为叫应"})
# How a duty officer confirmed on someone's behalf (代叫应).
PROXY_METHOD = _frozen({"phone": "电话确认", "visit": "上门确认", "loudspeaker": "喇叭喊话确认",
                        "other": "其他方式"})

CHANNEL = _frozen({"sms": "短信", "voice": "语音电话", "email": "邮件", "broadcast": "应急广播"})
OUTBOX_STATUS = _frozen({"queued": "排队中", "sending": "发送中", "sent": "已发出", "delivered": "已送达",
                         "undelivered": "未送达", "failed": "发送失败", "cancelled": "已取消"})
MESSAGE_KIND = _frozen({"alert": "预警", "update": "更新", "cancel": "解除", "recall": "重复叫应",
                        "deputy": "B岗叫应", "escalation": "逐级上报", "duty_room": "值班室兜底",
                         "duty_watch": "值班室知会", "attendance": "到岗确认"})

# 应急广播: a terminal's play for one warning (broadcast/), and why it failed.
BROADCAST_PLAY = _frozen({"finished": "已播放", "started": "播放中", "failed": "播放失败", "no_receipt": "无回执",
                          "not_sent": "未推送成功", "queued": "待推送"})
BROADCAST_ERROR = _frozen({"offline": "终端离线"})

REGION_LEVEL = _frozen({"province": "省", "city": "市", "county": "县(市、区)", "town": "乡镇(街道)",
                        "village": "村(社区)", "grid": "网格"})

HAZARD = _frozen({
    "typhoon": "台风", "rainstorm": "暴雨", "flood": "洪水", "mountain_torrent": "山洪",
    "geological": "地质灾害", "gale": "大风", "heat": "高温", "cold_wave": "寒潮", "blizzard": "暴雪",
    "lightning": "雷电", "hail": "冰雹", "fog": "大雾", "haze": "霾", "drought": "干旱", "frost": "霜冻",
    "road_ice": "道路结冰", "sandstorm": "沙尘暴", "forest_fire": "森林火险", "storm_surge": "风暴潮",
    "sea_wave": "海浪", "waterlogging": "城市内涝", "severe_convection": "强对流", "freezing": "低温雨雪冰冻",
})
WARNING_LEVEL = _frozen({"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"})
WARNING_STATUS = _frozen({"actual": "实际", "exercise": "演练", "test": "测试"})
WARNING_STATE = _frozen({"pending": "待审核", "rejected": "已退回", "active": "生效中", "lifted": "已解除",
                         "expired": "已失效"})
# CAP msgType → the action word of a Chinese warning ("继续发布" is written by the sender, not a type).
MSG_TYPE = _frozen({"alert": "发布", "update": "更新", "cancel": "解除"})

# 响应反馈 (feedback after the answer).
FEEDBACK_STATE = _frozen({"given": "已反馈", "missing": "未反馈"})
FEEDBACK_DEADLINE = _frozen({"met": "按时反馈", "late": "超时反馈", "missed": "超时未反馈",
                             "open": "反馈期限内未反馈"})

# 应急响应 levels, Ⅳ the lowest.
RESPONSE_LEVEL = _frozen({"IV": "Ⅳ级", "III": "Ⅲ级", "II": "Ⅱ级", "I": "Ⅰ级"})
RESPONSE_STATE = _frozen({"active": "响应中", "ended": "已终止"})
RESPONSE_ACTION = _frozen({"start": "启动", "raise": "提升", "lower": "降低", "end": "终止"})

YES, NO = "是", "否"


def zh(labels: Mapping[str, str], value: str | None) -> str:
    """The label of `value`, the value itself when it has none (never hide data), "" for None."""
    if value is None:
        return ""
    return labels.get(value, value)


def yes_no(value: bool | None) -> str:
    return "" if value is None else (YES if value else NO)
