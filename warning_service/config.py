"""All settings in one typed class, read from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_SECRET = "change-me"
TONGBAO_INDICATORS = ("answer", "on_time", "proxy", "feedback", "evacuation")
# A broadcast platform's receipt in our words (broadcast/receipts.py); BROADCAST_RECEIPT_FIELDS renames them.
BROADCAST_RECEIPT_FIELDS = ("id", "task", "terminal", "event", "repeats", "at", "error")


def async_database_url(url: str) -> str:
    """Map plain `postgresql://` and `sqlite://` URLs to the async drivers this service uses."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("postgresql+psycopg://") or url.startswith("postgresql+psycopg2://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///./warning_service.db"
    redis_url: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    policy_file: Path | None = None
    templates_dir: Path = PROJECT_ROOT / "templates"
    log_level: str = "INFO"
    # GB/T 35965.1 sender code parts after the 6-digit division code of the issuing user's scope.
    issuer_agency_code: str = Field("000", pattern=r"^\d{3}$")
    log_json: bool = False
    # The event loop of the worker and CLI commands (the API's follows it too): uvloop when installed.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"

    # Message texts (issue 13). The 【sign】 registered for the deployment's SMS; empty means the issuer's
    # short name ("温岭市防汛防台抗旱指挥部" → "温岭防指").
    sms_sign: str = Field("", max_length=12)
    # The primary SMS is fitted into this many parts by shortening its description (never the reply or link).
    sms_max_segments: int = Field(2, ge=1, le=6)
    # Said on the loudspeaker when a warning is lifted; empty to say nothing more.
    broadcast_lift_note: str = "已转移的群众请暂不返回,等候村(社区)通知。"
    # Hazard names that differ by province: "forest_fire=森林草原火险".
    hazard_names: str = ""

    access_token_minutes: int = 12 * 60
    # How long an acknowledgment link stays valid after its warning is lifted or expires.
    ack_link_grace_hours: int = 24
    # Bad acknowledgment tokens tolerated per address per minute before answering 429.
    ack_bad_token_per_minute: int = 20

    # Failed logins tolerated per window before 429, per username and per client address (issue 11).
    login_failures_per_username: int = Field(10, ge=1)
    login_failures_per_address: int = Field(100, ge=1)
    login_window_seconds: int = Field(900, ge=1)
    # Request body limits by route class (issue 11): JSON and forms, CAP documents, roster imports.
    max_json_body_bytes: int = Field(256 * 1024, ge=1024)
    max_cap_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_import_body_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    # CAP <sender> values whose identifiers and sender codes the relay keeps (comma separated); alerts from
    # any other sender are refused, so no caller can publish under another issuer's name.
    cap_trusted_senders: str = ""

    # Channels (issue 4).
    channel_adapters: str = "sms=console,voice=console,email=console,broadcast=console"
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    # Older tokens still accepted on webhooks while a rotation is under way (comma separated).
    twilio_auth_tokens_previous: str = ""
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    # A send the API has not answered within this long counts as failed and goes again (same idempotency key).
    twilio_timeout_seconds: float = Field(15.0, gt=0)
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_timeout_seconds: float = 10.0
    broadcast_push_url: str | None = None
    # 应急广播 platform (issue 14, `broadcast=http`): the URL taking one signed JSON request per village, the
    # shared secret both directions sign with (HMAC-SHA256), the request body as a Jinja template rendering a
    # JSON object (empty: channels/broadcast_http.py's default; variables task_id, text, zone, zone_name, town,
    # terminals, terminal_count, repeat, priority, level, kind, play_at, play_at_epoch, callback_url), plays
    # per level ("red=5,orange=3"; a level not listed plays the policy's broadcast_repeat) and the platform's
    # priority per level (default red=1 … blue=4). Receipts come back to /webhooks/broadcast/receipts.
    broadcast_platform_url: str | None = None
    broadcast_secret: SecretStr | None = None
    broadcast_request_template: str = ""
    broadcast_repeat_by_level: str = ""
    broadcast_priority_by_level: str = ""
    broadcast_timeout_seconds: float = Field(10.0, gt=0)
    # Receipt field names in the platform's words: "id=eventId,task=taskId,terminal=terminalId,event=status,
    # repeats=playCount,at=time,error=reason", and its event words: "started=PLAYING,finished=DONE,failed=FAIL".
    broadcast_receipt_fields: str = ""
    broadcast_receipt_events: str = ""
    # Receipts signed further than this from our clock are refused (a replayed old receipt).
    broadcast_signature_max_skew_seconds: float = Field(300.0, gt=0)
    # Aliyun 短信服务 (issue 14). Templates: "alert=SMS_123:area/20,hazard,level,reply_code,token;default=…"
    # (see channels/templates.py); the token variable follows the link's constant host in the template.
    aliyun_access_key_id: str | None = None
    aliyun_access_key_secret: SecretStr | None = None
    aliyun_sms_sign_name: str | None = None
    aliyun_sms_templates: str = ""
    aliyun_sms_endpoint: str = "dysmsapi.aliyuncs.com"
    aliyun_sms_batch_size: int = Field(100, ge=1, le=100)
    aliyun_sms_batch_wait_ms: int = Field(50, ge=0, le=1000)
    aliyun_timeout_seconds: float = Field(10.0, gt=0)
    # Aliyun 语音服务 (voice=aliyun): calls come from this purchased number (真实号). Templates as for SMS, with
    # TTS template codes ("alert=TTS_123:sender/20,area/20,hazard,level,deadline;cancel=TTS_124:area,hazard");
    # a call that asks for an answer is an IvrCall whose key 1 plays the confirmation template.
    aliyun_voice_called_show_number: str | None = None
    aliyun_voice_tts_templates: str = ""
    aliyun_voice_confirm_tts_code: str | None = None
    aliyun_voice_bye_tts_code: str | None = None  # played when an interactive call ends without key 1
    aliyun_voice_endpoint: str = "dyvmsapi.aliyuncs.com"
    aliyun_voice_play_times: int = Field(2, ge=1, le=3)
    aliyun_voice_key_timeout_ms: int = Field(8000, ge=1000, le=60000)
    # Aliyun's HTTP push (SmsReport / SmsUp, VoiceReport / VoiceCallReport) carries no signature: the push
    # URL configured in the console carries this token (`?token=…`), compared in constant time; use HTTPS.
    aliyun_push_token: SecretStr | None = None
    # Tencent Cloud SMS (issue 14); templates as for Aliyun, variables in the order of {1}, {2} …; a variable
    # without `/N` is capped at TENCENT_SMS_VARIABLE_MAX (Tencent's console shows the account's figure: 6 for
    # accounts opened since 2024-01-25, 12 for older ones). Push URLs carry TENCENT_PUSH_TOKEN like Aliyun's.
    tencent_secret_id: str | None = None
    tencent_secret_key: SecretStr | None = None
    tencent_sms_sdk_app_id: str | None = None
    tencent_sms_sign_name: str | None = None
    tencent_sms_templates: str = ""
    tencent_sms_endpoint: str = "sms.tencentcloudapi.com"
    tencent_region: str = "ap-guangzhou"
    tencent_timeout_seconds: float = Field(10.0, gt=0)
    tencent_sms_variable_max: int = Field(6, ge=1, le=100)
    tencent_sms_batch_wait_ms: int = Field(50, ge=0, le=1000)
    tencent_push_token: SecretStr | None = None
    # Failover between providers of one channel: a provider's breaker opens when at least `min_calls`
    # outcomes in a window hold this share of failures, and stays open for the cool-down.
    breaker_failure_ratio: float = Field(0.5, gt=0, le=1)
    breaker_min_calls: int = Field(20, ge=1)
    breaker_window_seconds: float = Field(10.0, gt=0)
    breaker_cooldown_seconds: float = Field(30.0, gt=0)
    # Per-channel pacing: "sms=100,voice=20" messages per second, shared by all workers.
    channel_rate_limits: str = "sms=200,voice=50,email=50,broadcast=20,console=100000"
    # Per-provider pacing (issue 14): "aliyun=5000,twilio=100" messages per second per provider, shared by
    # every worker through Redis (per process without it). It applies to each provider inside a failover
    # chain too, on top of the channel's limit above; a provider not named is paced by its channel alone.
    provider_rate_limits: str = ""
    # Sends in flight per channel per worker, each counted until its result is recorded (so a crash can
    # double at most this many). At 200 ms per provider call, 500 keep ~2,500 messages/s per worker going.
    channel_concurrency: int = Field(500, ge=1, le=5000)

    # Workers (issues 4 and 6).
    # Largest single claim; the dispatcher claims only what its free send slots can take soon.
    dispatch_batch_size: int = Field(500, ge=1, le=10_000)
    # How often an idle dispatcher looks for due messages.
    dispatch_interval_seconds: float = Field(0.5, gt=0)
    # A claimed row's lease, renewed by the worker's heartbeat while it holds the row.
    dispatch_lease_seconds: int = Field(30, ge=5)
    dispatch_heartbeat_seconds: float = Field(1.0, gt=0)
    # A worker whose heartbeat is older than this is gone: the rows it held go back to the queue.
    dispatch_worker_gone_seconds: float = Field(5.0, gt=0)
    # On SIGTERM, how long sends under way may take to finish before the worker leaves without them.
    dispatch_stop_grace_seconds: float = Field(10.0, ge=0)
    # /readyz fails when the oldest due message has waited longer than this.
    ready_max_lag_seconds: float = Field(120.0, gt=0)
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 600.0
    retry_max_attempts: int = 8
    escalation_tick_seconds: float = Field(5.0, gt=0)
    escalation_batch_size: int = Field(1000, ge=1)
    run_worker_in_process: bool = True

    # 通报 and 考核 (report/tongbao.py): weights of the town score, "indicator=weight,…" over answer (叫应率),
    # on_time (按时叫应率), proxy (1 − 代叫应占比), feedback (反馈率), evacuation (转移完成率, only for towns that
    # had 转移任务: the others are scored on the rest, renormalised); how many towns each of 红榜/黑榜 lists.
    tongbao_weights: str = "answer=40,on_time=30,proxy=10,feedback=20,evacuation=20"
    tongbao_list_size: int = Field(3, ge=1, le=50)
    # 演练 and 号码核验 (drills/): how often the worker looks for runs that are due; how long a drill's warning
    # stays in force (then it expires like any warning); a number check's default answer window.
    drill_tick_seconds: float = Field(15.0, gt=0)
    drill_window_minutes: int = Field(120, ge=10, le=24 * 60)
    number_check_answer_minutes: int = Field(24 * 60, ge=5, le=7 * 24 * 60)
    # An announced drill's 演练预告 goes to the people it will test this long before it (0: the office tells them).
    drill_notice_hours: float = Field(24.0, ge=0, le=30 * 24)
    # Heavy reads (issue 17). Exports of more notice rows than this are refused in the request and built
    # as background jobs by the worker, each in a child process, into `export_dir`, kept `export_ttl_hours`.
    export_direct_max_rows: int = Field(20_000, ge=0)
    export_dir: Path = PROJECT_ROOT / "var" / "exports"
    export_ttl_hours: float = Field(24.0, gt=0)
    export_workers: int = Field(1, ge=1, le=8)
    # A running job whose worker stops renewing this lease (it died) is claimed again, up to max attempts.
    export_lease_seconds: int = Field(60, ge=5)
    export_max_attempts: int = Field(3, ge=1)
    export_poll_seconds: float = Field(2.0, gt=0)
    # Reports over a region of this level or above (province … grid; "never" = always in the request's
    # process) are computed and encoded in a pool of child processes, so the API's event loop stays free.
    report_offload_level: Literal["province", "city", "county", "town", "village", "grid", "never"] = "city"
    report_pool_workers: int = Field(1, ge=1, le=8)
    # Exports and offloaded reports take turns on PostgreSQL, one statement at a time, and rest after each so
    # that together they keep at most this share of one database core busy (lane.py); answers keep the rest.
    # 0.25: with 0.5, a province export and a grid report beside 400 answers/s on two cores left link answers a
    # p99 of 0.2–0.9 s; with 0.25, 60–110 ms, and the export and report took no longer (docs/notes/heavy.md).
    heavy_read_share: float = Field(0.25, gt=0, le=1)

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.environment != "development" and self.secret_key.get_secret_value() in ("", PLACEHOLDER_SECRET):
            raise ValueError(
                f"SECRET_KEY is the placeholder {PLACEHOLDER_SECRET!r}; set a long random value "
                f"when ENVIRONMENT={self.environment}"
            )
        if len(self.secret_key.get_secret_value()) < 8:
            raise ValueError("SECRET_KEY must be at least 8 characters")
        if self.environment == "production" and len(self.secret_key.get_secret_value()) < 32:
            # It signs login tokens and acknowledgment links: short keys can be searched offline.
            raise ValueError("SECRET_KEY must be at least 32 characters when ENVIRONMENT=production "
                             "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')")
        return self

    @property
    def async_database_url(self) -> str:
        return async_database_url(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.async_database_url.startswith("sqlite")

    def adapter_for(self) -> dict[str, str]:
        """CHANNEL_ADAPTERS parsed: channel name -> adapter name, or providers in failover order joined by ','
        (`sms=aliyun,tencent,twilio,voice=twilio`: a part without '=' continues the channel before it)."""
        out: dict[str, str] = {}
        last: str | None = None
        for part in filter(None, (p.strip() for p in self.channel_adapters.split(","))):
            name, sep, value = part.partition("=")
            if not sep:
                if last is None:
                    raise ValueError(f"CHANNEL_ADAPTERS: {part!r} is not of the form channel=adapter[,adapter…]")
                out[last] += "," + part
                continue
            if not name.strip() or not value.strip():
                raise ValueError(f"CHANNEL_ADAPTERS: {part!r} is not of the form channel=adapter[,adapter…]")
            last = name.strip()
            out[last] = value.strip()
        return out

    def hazard_name_overrides(self) -> dict[str, str]:
        """HAZARD_NAMES parsed: hazard code -> the Chinese name this deployment uses."""
        return _parse_pairs(self.hazard_names, "HAZARD_NAMES")

    def broadcast_receipt_field_names(self) -> dict[str, str]:
        """BROADCAST_RECEIPT_FIELDS parsed: our receipt field → the platform's name for it."""
        out = _parse_pairs(self.broadcast_receipt_fields, "BROADCAST_RECEIPT_FIELDS")
        unknown = set(out) - set(BROADCAST_RECEIPT_FIELDS)
        if unknown:
            raise ValueError(f"BROADCAST_RECEIPT_FIELDS: unknown field {sorted(unknown)[0]!r} "
                             f"(use {', '.join(BROADCAST_RECEIPT_FIELDS)})")
        return out

    def broadcast_receipt_event_words(self) -> dict[str, str]:
        """BROADCAST_RECEIPT_EVENTS parsed: the platform's word → started / finished / failed."""
        out = _parse_pairs(self.broadcast_receipt_events, "BROADCAST_RECEIPT_EVENTS")
        unknown = set(out) - {"started", "finished", "failed"}
        if unknown:
            raise ValueError(f"BROADCAST_RECEIPT_EVENTS: unknown event {sorted(unknown)[0]!r} "
                             "(use started, finished, failed)")
        return {word: ours for ours, word in out.items()}

    @model_validator(mode="after")
    def _check_broadcast(self) -> Settings:
        self.broadcast_receipt_field_names()
        self.broadcast_receipt_event_words()
        return self

    def trusted_cap_senders(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.cap_trusted_senders.split(",") if p.strip())

    def tongbao_weight_map(self) -> dict[str, float]:
        """TONGBAO_WEIGHTS parsed; unknown indicators and negative or all-zero weights are refused."""
        out = {k: float(v) for k, v in _parse_pairs(self.tongbao_weights, "TONGBAO_WEIGHTS").items()}
        unknown = set(out) - set(TONGBAO_INDICATORS)
        if unknown:
            raise ValueError(f"TONGBAO_WEIGHTS: unknown indicator {sorted(unknown)[0]!r} "
                             f"(use {', '.join(TONGBAO_INDICATORS)})")
        if any(v < 0 for v in out.values()) or not any(out.values()):
            raise ValueError("TONGBAO_WEIGHTS: weights must be ≥ 0 and not all zero")
        return out

    @model_validator(mode="after")
    def _check_tongbao(self) -> Settings:
        self.tongbao_weight_map()
        return self

    def rate_limits(self) -> dict[str, float]:
        return {k: float(v) for k, v in _parse_pairs(self.channel_rate_limits, "CHANNEL_RATE_LIMITS").items()}

    def provider_limits(self) -> dict[str, float]:
        """PROVIDER_RATE_LIMITS parsed: provider name -> messages per second (> 0)."""
        out: dict[str, float] = {}
        for name, raw in _parse_pairs(self.provider_rate_limits, "PROVIDER_RATE_LIMITS").items():
            try:
                out[name] = float(raw)
            except ValueError:
                raise ValueError(f"PROVIDER_RATE_LIMITS: {name}={raw!r} is not a number") from None
            if not out[name] > 0:
                raise ValueError(f"PROVIDER_RATE_LIMITS: {name}={raw} must be > 0 messages per second")
        return out

    @model_validator(mode="after")
    def _check_heartbeat(self) -> Settings:
        # A worker stops sending once 0.6 of the gone interval passes without a beat (dispatcher.FENCE_SHARE):
        # beats must come several times within that, or a healthy worker would keep fencing itself.
        if self.dispatch_heartbeat_seconds * 3 > self.dispatch_worker_gone_seconds:
            raise ValueError("DISPATCH_WORKER_GONE_SECONDS must be at least 3 × DISPATCH_HEARTBEAT_SECONDS "
                             f"(now {self.dispatch_worker_gone_seconds:g} and {self.dispatch_heartbeat_seconds:g})")
        return self

    @model_validator(mode="after")
    def _check_provider_limits(self) -> Settings:
        self.provider_limits()
        return self


def _parse_pairs(raw: str, key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"{key}: {part!r} is not of the form name=value")
        out[name.strip()] = value.strip()
    return out


@lru_cache
def get_settings() -> Settings:
    return Settings()
