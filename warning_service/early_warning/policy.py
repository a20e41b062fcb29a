"""Who is reached, how, and how hard they are chased — per hazard × level, from POLICY_FILE.

The defaults follow Zhejiang county practice (DOMAIN.md): 叫应 for orange and red, phone the person if
unanswered after 3 minutes, three calls (叫应必答), then the level above. A file overrides any of it:

    [levels.red]
    ack_deadline = "3m"
    [hazards.mountain_torrent.orange]
    roles = ["grid_responsible", "village_responsible", "torrent_warner"]
    [defaults]
    issuer = "{region}防汛抗旱指挥部"          # Ningxia's name for the same office
    [hazards.rainstorm]
    forwarded_from = "{region}气象台"          # a key that is not a level applies to every level
    [hazards.mountain_torrent.red]
    level_name = "立即转移"                    # 山洪 levels by what people must do (and 准备转移 for orange)
    [levels.orange]
    sign_off = true                            # 审核签发: held until a 带班领导 approves (default off)

`issuer` and `forwarded_from` are templates over `{region}`, the issuing region's name. A warning with
`forwarded_from` is a product of that body which the office forwards with its own instructions
("转发温岭市气象台:…"); without it the office issues in its own name.

The resolved policy is snapshotted onto each warning, so editing the file never rewrites history.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from warning_service.early_warning.models import Hazard, Level

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
CHANNELS = ("sms", "voice", "email", "broadcast")
ESCALATION_LEVELS = ("village", "town", "county")


def parse_duration(value: str | int | float) -> float:
    """'90s', '3m', '1h', '250ms' or a number of seconds → seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration like 90s, 3m or 1h")
        seconds = float(m.group(1)) * _UNIT[m.group(2)]
    if seconds <= 0:
        raise ValueError(f"{value!r} must be longer than zero")
    return seconds


class LevelPolicy(BaseModel):
    """What one hazard × level does. Every field may be overridden by the file."""

    model_config = ConfigDict(extra="forbid")

    roles: list[str] = Field(min_length=1)
    ack_required: bool
    ack_deadline: float = 180.0
    channels: list[str] = Field(min_length=1)  # sent at once on issue
    recall_channel: str | None = "voice"  # used for each re-call of someone silent
    recall_interval: float = 180.0
    recall_count: int = Field(3, ge=0, le=20)
    escalate: bool = True
    escalate_until: str = "county"  # highest level told that someone below has not answered
    call_deputy: bool = True
    issuer: str = "{region}防汛防台抗旱指挥部"
    forwarded_from: str | None = None
    broadcast_repeat: int = Field(3, ge=1, le=10)  # village loudspeakers play a message this many times
    # The level's own name where a hazard has one, e.g. 山洪 "准备转移" (orange) and "立即转移" (red);
    # otherwise texts say "红色" and so on.
    level_name: str | None = Field(None, min_length=1, max_length=8)
    # 审核签发: an issue is held, unsent, until a 带班领导 (console role `leader`, not the submitter) approves it.
    # Off by default at every level: a warning must never wait on an approver a county has not set up;
    # a county that signs off orange/red sets `[levels.red] sign_off = true` (docs/notes/signoff.md).
    sign_off: bool = False

    @field_validator("issuer", "forwarded_from")
    @classmethod
    def _place_template(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            v.format(region="温岭市")
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"{v!r} may use only {{region}}") from None
        return v
    # When nobody above is left to tell, the duty room on shift (duty/) gets the chain's last call.
    duty_room: bool = True
    # The nearest duty room on shift is told at the first missed deadline, in parallel with the re-calls,
    # so that no silence waits for the whole chain (12–36 minutes) before someone who can act sees it.
    duty_watch: bool = True

    @field_validator("ack_deadline", "recall_interval", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[str]) -> list[str]:
        for c in v:
            if c not in CHANNELS:
                raise ValueError(f"unknown channel {c!r}; use {', '.join(CHANNELS)}")
        return v

    @field_validator("recall_channel")
    @classmethod
    def _recall_channel(cls, v: str | None) -> str | None:
        if v is not None and v not in ("sms", "voice"):
            raise ValueError("recall_channel must be sms or voice")
        return v

    @field_validator("escalate_until")
    @classmethod
    def _until(cls, v: str) -> str:
        if v not in ESCALATION_LEVELS:
            raise ValueError(f"escalate_until must be one of {', '.join(ESCALATION_LEVELS)}")
        return v

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        for r in v:
            if not re.fullmatch(r"[a-z][a-z_]{0,39}", r):
                raise ValueError(f"{r!r} is not a role name")
        return v


# Zhejiang practice: orange reaches every grid and village responsible person (落实直达网格责任人); red adds
# the town and the county duty office.
_VILLAGE_ROLES = ["grid_responsible", "village_responsible", "village_cadre"]
DEFAULT_LEVELS: dict[str, dict[str, Any]] = {
    "red": {"roles": [*_VILLAGE_ROLES, "town_responsible", "county_duty"], "ack_required": True,
            "ack_deadline": "3m", "channels": ["sms", "email", "broadcast"], "recall_channel": "voice",
            "recall_interval": "3m", "recall_count": 3, "escalate": True, "escalate_until": "county"},
    "orange": {"roles": list(_VILLAGE_ROLES), "ack_required": True,
               "ack_deadline": "5m", "channels": ["sms", "email"], "recall_channel": "voice",
               "recall_interval": "5m", "recall_count": 3, "escalate": True, "escalate_until": "county"},
    "yellow": {"roles": ["village_responsible", "town_responsible"], "ack_required": False,
               "ack_deadline": "15m", "channels": ["sms"], "recall_channel": None, "recall_count": 0,
               "escalate": False},
    "blue": {"roles": ["village_responsible"], "ack_required": False, "ack_deadline": "30m",
             "channels": ["sms"], "recall_channel": None, "recall_count": 0, "escalate": False},
}

# Who issues each hazard's warnings. Meteorological and marine products are the 气象台's, forwarded by the
# office with its own instructions; the specialised roles of a hazard are reached with the village ones.
_MET = "{region}气象台"
DEFAULT_HAZARDS: dict[str, dict[str, Any]] = {
    **{h: {"forwarded_from": _MET} for h in (
        "typhoon", "rainstorm", "gale", "heat", "cold_wave", "blizzard", "lightning", "hail", "fog", "haze",
        "drought", "frost", "road_ice", "sandstorm", "severe_convection", "freezing")},
    "storm_surge": {"forwarded_from": "{region}海洋预报台"},
    "sea_wave": {"forwarded_from": "{region}海洋预报台"},
    "mountain_torrent": {"forwarded_from": "{region}水利局", "extra_roles": ["torrent_warner"]},
    "flood": {"forwarded_from": "{region}水利局"},
    "geological": {"forwarded_from": "{region}自然资源和规划局", "extra_roles": ["geo_hazard_monitor"]},
    "forest_fire": {"issuer": "{region}森林防灭火指挥部"},
}
LEVEL_FIELDS = set(LevelPolicy.model_fields)


RESPONSE_LEVELS = ("IV", "III", "II", "I")


class ResponsePolicy(BaseModel):
    """What an emergency response level demands: who must confirm 到岗, by when, how hard they are chased,
    and what it imposes on warnings issued while it is in force. `[responses.II]` in the file overrides it."""

    model_config = ConfigDict(extra="forbid")

    roles: list[str] = Field(min_length=1)
    ack_deadline: float = 1800.0
    recall_channel: str | None = "voice"
    recall_interval: float = 600.0
    recall_count: int = Field(2, ge=0, le=20)
    # LevelPolicy fields imposed on every warning issued under this level (e.g. Ⅰ级: grids, 3 minutes).
    warnings: dict[str, Any] = Field(default_factory=dict)

    _duration = field_validator("ack_deadline", "recall_interval", mode="before")(LevelPolicy._duration.__func__)
    _roles = field_validator("roles")(LevelPolicy._roles.__func__)
    _recall_channel = field_validator("recall_channel")(LevelPolicy._recall_channel.__func__)

    @field_validator("warnings")
    @classmethod
    def _warnings(cls, v: dict[str, Any]) -> dict[str, Any]:
        unknown = set(v) - set(LevelPolicy.model_fields)
        if unknown:
            raise ValueError(f"warnings: unknown field {sorted(unknown)[0]!r}")
        return v

    def chase(self) -> dict[str, Any]:
        """The policy a 到岗 demand is chased by, in the shape the escalation sweep reads."""
        return {"ack_required": True, "ack_deadline": self.ack_deadline, "recall_channel": self.recall_channel,
                "recall_interval": self.recall_interval, "recall_count": self.recall_count, "escalate": False,
                "call_deputy": False, "duty_room": False, "duty_watch": False}


DEFAULT_RESPONSES: dict[str, dict[str, Any]] = {
    "IV": {"roles": ["town_responsible"], "ack_deadline": "30m", "recall_interval": "10m", "recall_count": 2},
    "III": {"roles": ["town_responsible", "county_responsible"], "ack_deadline": "20m", "recall_interval": "10m",
            "recall_count": 2},
    "II": {"roles": ["town_responsible", "county_responsible", "member_unit", "village_cadre"],
           "ack_deadline": "15m", "recall_interval": "5m", "recall_count": 3},
    "I": {"roles": ["village_responsible", "town_responsible", "county_responsible", "member_unit",
                    "village_cadre"], "ack_deadline": "10m", "recall_interval": "3m", "recall_count": 3,
          "warnings": {"roles": ["grid_responsible", "village_responsible", "town_responsible"],
                       "ack_required": True, "ack_deadline": "3m"}},
}


class PolicyError(ValueError):
    """A bad policy file: names the key and the reason."""


class PolicyBook:
    """Resolved policies for every hazard × level."""

    def __init__(self, table: dict[tuple[str, str], LevelPolicy], source: str,
                 responses: dict[str, ResponsePolicy] | None = None) -> None:
        self._table = table
        self.source = source
        self.responses = responses if responses is not None else {
            k: ResponsePolicy.model_validate(v) for k, v in DEFAULT_RESPONSES.items()}

    def response(self, level: str) -> ResponsePolicy:
        return self.responses[level]

    def snapshot_under(self, hazard: str, level: str, response_level: str | None, *,
                       region_name: str = "") -> dict[str, Any]:
        """The policy of a warning issued while a response of `response_level` is in force."""
        snap = self.snapshot(hazard, level, region_name=region_name)
        if response_level is None:
            return snap
        imposed = self.response(response_level).warnings
        merged = LevelPolicy.model_validate({**self.resolve(hazard, level).model_dump(), **imposed})
        return {**snap, **merged.model_dump(), "response_level": response_level}

    def resolve(self, hazard: str, level: str) -> LevelPolicy:
        return self._table[(hazard, level)]

    def snapshot(self, hazard: str, level: str, *, region_name: str = "") -> dict[str, Any]:
        """The policy in force, as stored on the warning, with the issuer's names filled in for `region_name`."""
        p = self.resolve(hazard, level)
        return {"hazard": hazard, "level": level, "source": self.source, **p.model_dump(),
                "region_name": region_name, "issuer": p.issuer.format(region=region_name),
                "forwarded_from": p.forwarded_from.format(region=region_name) if p.forwarded_from else None}


def load_policy(path: Path | None) -> PolicyBook:
    """Built-in defaults, overridden by the TOML or YAML file if given. Raises PolicyError with the key."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"POLICY_FILE {path}: cannot read: {exc.strerror}") from None
        try:
            raw = (yaml.safe_load(text) if str(path).endswith((".yaml", ".yml")) else tomllib.loads(text)) or {}
        except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
            raise PolicyError(f"POLICY_FILE {path}: not valid TOML/YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise PolicyError(f"POLICY_FILE {path}: top level must be a table")
        unknown = set(raw) - {"defaults", "levels", "hazards", "responses"}
        if unknown:
            raise PolicyError(f"POLICY_FILE {path}: unknown key {sorted(unknown)[0]!r} "
                              "(use defaults, levels, hazards, responses)")
    source = str(path) if path else "built-in"
    defaults = _table(raw.get("defaults", {}), "defaults", source)
    levels = _table(raw.get("levels", {}), "levels", source)
    hazards = _table(raw.get("hazards", {}), "hazards", source)
    for key in levels:
        if key not in Level.__members__:
            raise PolicyError(f"POLICY_FILE {source}: levels.{key}: unknown level (use blue, yellow, orange, red)")
    for key, per_level in hazards.items():
        if key not in Hazard.__members__:
            raise PolicyError(f"POLICY_FILE {source}: hazards.{key}: unknown hazard")
        for lvl in _table(per_level, f"hazards.{key}", source):
            if lvl not in Level.__members__ and lvl not in LEVEL_FIELDS:
                raise PolicyError(f"POLICY_FILE {source}: hazards.{key}.{lvl}: neither a level "
                                  "(blue, yellow, orange, red) nor a policy field")
    table: dict[tuple[str, str], LevelPolicy] = {}
    for hazard in Hazard:
        for level in Level:
            builtin = dict(DEFAULT_HAZARDS.get(hazard.value, {}))
            extra = builtin.pop("extra_roles", [])
            per_hazard = _table(hazards.get(hazard.value, {}), f"hazards.{hazard.value}", source)
            merged = {**DEFAULT_LEVELS[level.value], **builtin, **defaults,
                      **_table(levels.get(level.value, {}), f"levels.{level.value}", source),
                      **{k: v for k, v in per_hazard.items() if k not in Level.__members__},
                      **_table(per_hazard.get(level.value, {}), f"hazards.{hazard.value}.{level.value}", source)}
            if extra and merged["roles"] is DEFAULT_LEVELS[level.value]["roles"] and level.value in ("orange", "red"):
                merged["roles"] = [*merged["roles"], *extra]
            try:
                table[(hazard.value, level.value)] = LevelPolicy.model_validate(merged)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = _where(raw, hazard.value, level.value, str(err["loc"][0]) if err["loc"] else "")
                raise PolicyError(f"POLICY_FILE {source}: {where}: {err['msg']}") from None
    return PolicyBook(table, source, _responses(_table(raw.get("responses", {}), "responses", source), source))


def _responses(raw: dict[str, Any], source: str) -> dict[str, ResponsePolicy]:
    for key in raw:
        if key not in RESPONSE_LEVELS:
            raise PolicyError(f"POLICY_FILE {source}: responses.{key}: unknown response level (use IV, III, II, I)")
    out: dict[str, ResponsePolicy] = {}
    for level in RESPONSE_LEVELS:
        merged = {**DEFAULT_RESPONSES[level], **_table(raw.get(level, {}), f"responses.{level}", source)}
        try:
            out[level] = ResponsePolicy.model_validate(merged)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"])
            raise PolicyError(f"POLICY_FILE {source}: responses.{level}.{field}: {err['msg']}") from None
    return out


def _table(value: Any, key: str, source: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PolicyError(f"POLICY_FILE {source}: {key}: must be a table")
    return value


def _where(raw: dict[str, Any], hazard: str, level: str, field: str) -> str:
    """The most specific key that set the offending field."""
    if field in raw.get("hazards", {}).get(hazard, {}).get(level, {}):
        return f"hazards.{hazard}.{level}.{field}"
    if field in raw.get("hazards", {}).get(hazard, {}):
        return f"hazards.{hazard}.{field}"
    if field in raw.get("levels", {}).get(level, {}):
        return f"levels.{level}.{field}"
    if field in raw.get("defaults", {}):
        return f"defaults.{field}"
    return f"{hazard}.{level}.{field}"
