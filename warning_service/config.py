"""All settings in one typed class, read from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_SECRET = "change-me"
TONGBAO_INDICATORS = ("answer", "on_time", "proxy", "feedback")


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
    # Aliyun's HTTP push (SmsReport / SmsUp) carries no signature: the push URL configured in the console
    # carries this token (`?token=…`), compared in constant time; use HTTPS.
    aliyun_push_token: SecretStr | None = None
    # Tencent Cloud SMS (issue 14); templates as for Aliyun, variables in the order of {1}, {2} ….
    tencent_secret_id: str | None = None
    tencent_secret_key: SecretStr | None = None
    tencent_sms_sdk_app_id: str | None = None
    tencent_sms_sign_name: str | None = None
    tencent_sms_templates: str = ""
    tencent_sms_endpoint: str = "sms.tencentcloudapi.com"
    tencent_region: str = "ap-guangzhou"
    tencent_timeout_seconds: float = Field(10.0, gt=0)
    tencent_push_token: SecretStr | None = None
    # Failover between providers of one channel: a provider's breaker opens when at least `min_calls`
    # outcomes in a window hold this share of failures, and stays open for the cool-down.
    breaker_failure_ratio: float = Field(0.5, gt=0, le=1)
    breaker_min_calls: int = Field(20, ge=1)
    breaker_window_seconds: float = Field(10.0, gt=0)
    breaker_cooldown_seconds: float = Field(30.0, gt=0)
    # Per-channel pacing: "sms=100,voice=20" messages per second, shared by all workers.
    channel_rate_limits: str = "sms=200,voice=50,email=50,broadcast=20,console=100000"
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
    # on_time (按时叫应率), proxy (1 − 代叫应占比), feedback (反馈率); how many towns each of 红榜/黑榜 lists.
    tongbao_weights: str = "answer=40,on_time=30,proxy=10,feedback=20"
    tongbao_list_size: int = Field(3, ge=1, le=50)
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
