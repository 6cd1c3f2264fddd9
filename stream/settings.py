"""All of hotpath's configuration: one pydantic-settings class read from ``HOTPATH_*`` variables.

Defaults run on a laptop against the project's own broker on 127.0.0.1:9092. Nested values
(``score``, ``sinks``) are JSON in their variable, e.g. ``HOTPATH_SINKS='[{"name": ...}]'``, or use
``HOTPATH_SCORE__WEIGHT_INTERNET=30`` for one field.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Priority = Literal["P1", "P2", "P3", "P4", "P5"]


class ConfigError(Exception):
    """A bad setting. Its message is one line naming the variable and what is wrong."""


class ScoreSettings(BaseModel):
    """Weights and thresholds of the exploitability score (see README, "The score")."""

    severity_critical: float = 30.0
    severity_high: float = 22.0
    severity_medium: float = 14.0
    severity_low: float = 6.0
    severity_informational: float = 0.0
    weight_exercised: float = 15.0
    weight_volume: float = 10.0
    volume_saturation_spans: int = 1000
    weight_internet_direct: float = 20.0
    weight_internet_path: float = 15.0
    weight_attack: float = 25.0
    attack_half_life_s: float = 1800.0
    weight_data: float = 10.0
    weight_criticality: float = 10.0
    p1_min: float = 75.0
    p2_min: float = 60.0
    p3_min: float = 45.0
    p4_min: float = 25.0
    held_cap: float = 44.0

    @model_validator(mode="after")
    def _thresholds_descend(self) -> ScoreSettings:
        if not (100 >= self.p1_min > self.p2_min > self.p3_min > self.p4_min >= 0):
            raise ValueError("thresholds must satisfy 100 >= p1_min > p2_min > p3_min > p4_min >= 0")
        if self.held_cap >= self.p3_min:
            raise ValueError("held_cap must stay below p3_min, or held findings could reach P3")
        return self


class SinkSettings(BaseModel):
    """One incident webhook destination."""

    name: str
    kind: Literal["pagerduty", "opsgenie", "webhook"]
    url: str | None = None
    min_priority: Priority = "P3"
    match_owner: str | None = None
    match_environment: str | None = None
    secret_env: str | None = Field(default=None, description="environment variable holding the secret")
    secret_file: Path | None = Field(default=None, description="file holding the secret")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOTPATH_", env_nested_delimiter="__", extra="ignore")

    # Kafka connection (both Faust/aiokafka and confluent-kafka are configured from these).
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None

    # Topics. Partition counts and retention live in topics/*.yaml.
    app_id: str = "hotpath"
    topic_findings: str = "hotpath.findings"
    topic_traces: str = "otlp_spans"
    topic_alerts: str = "hotpath.alerts"
    topic_assets: str = "hotpath.assets"
    topic_escalations: str = "hotpath.escalations"
    topic_siem: str = "hotpath.siem.ocsf"
    topic_dlq: str = "hotpath.dlq"
    topic_entity_events: str = "hotpath.entity-events"
    topic_context: str = "hotpath.context"
    topics_dir: Path = Path(__file__).resolve().parent.parent / "topics"

    # Event-time windows.
    window_size_s: float = Field(default=900.0, gt=0, description="width of a traffic window")
    window_step_s: float = Field(default=60.0, gt=0, description="how far a hopping window advances")
    allowed_lateness_s: float = Field(default=300.0, ge=0)
    stale_windows: int = Field(default=4, ge=1, description="resolve after this many windows unexercised")
    max_trace_ids: int = Field(default=5, ge=0, description="sample trace ids kept as evidence per touch")

    traces_encoding: Literal["auto", "otlp_proto", "otlp_json"] = "auto"

    # Limits on hostile input.
    max_record_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    max_json_depth: int = Field(default=64, gt=0)
    max_spans_per_message: int = Field(default=200_000, gt=0)
    max_attributes_per_span: int = Field(default=512, gt=0)
    dlq_max_value_bytes: int = Field(default=64 * 1024, ge=0)

    # Scoring and outputs.
    score: ScoreSettings = ScoreSettings()
    escalation_threshold: Priority = "P3"
    max_path_depth: int = Field(default=5, ge=1, description="longest call path searched for internet exposure")
    tick_interval_s: float = Field(default=1.0, gt=0, description="how often live entities are re-scored")
    sinks: list[SinkSettings] = []
    trace_url_template: str = "http://localhost:16686/trace/{trace_id}"
    delivery_retry_budget: int = Field(default=8, ge=0)
    delivery_backoff_base_s: float = Field(default=0.5, gt=0)
    delivery_backoff_max_s: float = Field(default=30.0, gt=0)
    delivery_request_timeout_s: float = Field(default=10.0, gt=0, description="one webhook request, connect to answer")

    # Worker.
    asset_file: Path | None = None
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    data_dir: Path = Path(".run/worker")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # AWS connectors (`hotpath aws ...`). Credentials come from boto3's standard chain only.
    aws_endpoint_url: str | None = Field(default=None, description="one endpoint for every AWS API (testing)")
    aws_tag_keys: dict[str, str] = Field(
        default={
            "service": "hotpath:service",
            "criticality": "criticality",
            "data_classification": "data-classification",
            "owner": "owner",
            "environment": "environment",
            "internet_facing": "hotpath:internet-facing",
        },
        description="asset field -> AWS tag key that carries it (matched case-insensitively)",
    )

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.window_step_s > self.window_size_s:
            raise ValueError("window_step_s must not exceed window_size_s")
        if self.security_protocol.startswith("SASL") and not (self.sasl_mechanism and self.sasl_username):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism and sasl_username")
        return self


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = "__".join(str(part) for part in err["loc"] if part not in ("function-after",))
    name = f"HOTPATH_{field.upper()}" if field else "HOTPATH_* settings"
    given = err.get("input")
    shown = "" if isinstance(given, dict) or given is None else f" (got {str(given)[:60]!r})"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{name}: {err['msg']}{shown}{more}"


def load_settings(**overrides) -> Settings:
    """Read the settings, turning a validation failure into a one-line ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
