"""All of hotpath's configuration: one pydantic-settings class read from ``HOTPATH_*`` variables.

Defaults run on a laptop against the project's own broker on 127.0.0.1:9092. Nested values
(``score``, ``sinks``) are JSON in their variable, e.g. ``HOTPATH_SINKS='[{"name": ...}]'``, or use
``HOTPATH_SCORE__WEIGHT_INTERNET=30`` for one field.
"""

from __future__ import annotations

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
    model_config = SettingsConfigDict(env_prefix="HOTPATH_", env_nested_delimiter="__", extra="ignore",
                                      use_attribute_docstrings=True)

    # Kafka connection (both Faust/aiokafka and confluent-kafka are configured from these).
    bootstrap_servers: str = "127.0.0.1:9092"
    """Kafka bootstrap servers, comma-separated."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How clients talk to the brokers."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    """SASL mechanism, with a SASL protocol."""
    sasl_username: str | None = None
    """SASL user name."""
    sasl_password: SecretStr | None = None
    """SASL password (never logged)."""
    ssl_ca_file: Path | None = None
    """PEM file of the CAs that sign the brokers' certificates (system CAs when unset)."""
    ssl_cert_file: Path | None = None
    """PEM client certificate, for mutual TLS."""
    ssl_key_file: Path | None = None
    """PEM client key, for mutual TLS."""
    kafka_connect_timeout_s: float = Field(default=30.0, gt=0)
    """How long a process waits for the brokers at start-up before it stops with one line naming them."""

    # Topics. Partition counts and retention live in topics/*.yaml.
    app_id: str = "hotpath"
    """Consumer group of the worker, and prefix of its internal topics (changelogs)."""
    topic_findings: str = "hotpath.findings"
    """Input: CSPM findings (Prowler OCSF, Security Hub ASFF/OCSF, AWS Config)."""
    topic_traces: str = "otlp_spans"
    """Input: OTLP traces as the Collector's Kafka exporter writes them."""
    topic_alerts: str = "hotpath.alerts"
    """Input: Falco (falcosidekick) and GuardDuty alerts."""
    topic_assets: str = "hotpath.assets"
    """Input, compacted: asset context keyed by entity id."""
    topic_escalations: str = "hotpath.escalations"
    """Output: escalation events keyed by finding uid."""
    topic_siem: str = "hotpath.siem.ocsf"
    """Output: OCSF Detection Findings for a SIEM."""
    topic_dlq: str = "hotpath.dlq"
    """Output: dead letters (undecodable input, failed deliveries)."""
    topic_entity_events: str = "hotpath.entity-events"
    """Internal: decoded records re-keyed by entity id."""
    topic_context: str = "hotpath.context"
    """Internal, compacted: facts every worker reads in full (pods, call edges, alerts)."""
    replication_factor: int = Field(default=1, ge=1)
    """Copies of every topic hotpath creates, Faust's changelogs included (3 in production)."""
    min_insync_replicas: int = Field(default=1, ge=1)
    """min.insync.replicas of every topic hotpath creates (2 in production, with acks=all)."""
    topics_dir: Path = Path(__file__).resolve().parent.parent / "topics"
    """Folder of topics.yaml and the output JSON Schemas."""

    # Event-time windows.
    window_size_s: float = Field(default=900.0, gt=0)
    """Width of a traffic window: a finding is exercised when traffic touched it within it."""
    window_step_s: float = Field(default=60.0, gt=0)
    """How far a hopping window advances; also the bucket size of per-entity traffic."""
    allowed_lateness_s: float = Field(default=300.0, ge=0)
    """How late (in event time) a record may arrive and still count in its window."""
    stale_windows: int = Field(default=4, ge=1)
    """An escalated finding unexercised for this many windows is resolved."""
    max_trace_ids: int = Field(default=5, ge=0)
    """Sample trace ids kept as evidence per entity."""
    traces_encoding: Literal["auto", "otlp_proto", "otlp_json"] = "auto"
    """Encoding of otlp_spans records; auto tells JSON from protobuf by the first byte."""

    # Limits on hostile input.
    max_record_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    """Larger input records are dead-lettered unread."""
    max_json_depth: int = Field(default=64, gt=0)
    """Deeper JSON documents are refused."""
    max_spans_per_message: int = Field(default=200_000, gt=0)
    """An OTLP message with more spans is refused."""
    max_attributes_per_span: int = Field(default=512, gt=0)
    """A span with more attributes is refused."""
    dlq_max_value_bytes: int = Field(default=64 * 1024, ge=0)
    """How much of a bad record's value a dead letter keeps."""

    # Scoring and outputs.
    score: ScoreSettings = ScoreSettings()
    """Weights and priority thresholds of the score (README, "The score")."""
    escalation_threshold: Priority = "P3"
    """Findings at this priority or higher are escalated."""
    max_path_depth: int = Field(default=5, ge=1)
    """Longest call path searched for internet exposure."""
    tick_interval_s: float = Field(default=1.0, gt=0)
    """How often live entities are re-scored with the latest shared context (wall time)."""
    sinks: list[SinkSettings] = []
    """Incident webhooks, as a JSON list of {name, kind, url, min_priority, match_owner, match_environment, secret_env, secret_file}."""
    trace_url_template: str = "http://localhost:16686/trace/{trace_id}"
    """Link to a trace in your trace UI (Jaeger, Tempo, X-Ray), for webhook payloads."""
    delivery_retry_budget: int = Field(default=8, ge=0)
    """Retries per event and sink before it goes to the dead-letter topic."""
    delivery_backoff_base_s: float = Field(default=0.5, gt=0)
    """First retry delay; doubles per retry, with full jitter."""
    delivery_backoff_max_s: float = Field(default=30.0, gt=0)
    """Longest retry delay, also the cap on Retry-After."""
    delivery_request_timeout_s: float = Field(default=10.0, gt=0)
    """One webhook request, connect to answer."""

    # Worker.
    asset_file: Path | None = None
    """A YAML or JSON asset file loaded at start, besides the asset topic."""
    web_host: str = "127.0.0.1"
    """Address of the worker's /health, /metrics and /escalations."""
    web_port: int = Field(default=6066, ge=0, le=65535)
    """Port of the worker's web views."""
    web_token: SecretStr | None = None
    """Bearer token the data views (/escalations, ...) require; without one the web servers listen on loopback only."""
    deliver_web_port: int = Field(default=6067, ge=0, le=65535)
    """Port of `hotpath deliver`'s /health and /metrics."""
    data_dir: Path = Path(".run/worker")
    """Where the worker keeps local files."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of hotpath's JSON logs."""

    # AWS connectors (`hotpath aws ...`). Credentials come from boto3's standard chain only.
    aws_endpoint_url: str | None = None
    """One endpoint for every AWS API (testing with moto or localstack)."""
    aws_tag_keys: dict[str, str] = {
        "service": "hotpath:service",
        "criticality": "criticality",
        "data_classification": "data-classification",
        "owner": "owner",
        "environment": "environment",
        "internet_facing": "hotpath:internet-facing",
    }
    """Asset field -> the AWS tag key that carries it (matched case-insensitively)."""

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.window_step_s > self.window_size_s:
            raise ValueError("window_step_s must not exceed window_size_s")
        if self.security_protocol.startswith("SASL") and not (self.sasl_mechanism and self.sasl_username):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism and sasl_username")
        return self


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def web_bind_host(settings: Settings) -> str:
    """Where a web server of hotpath listens: anywhere only when its data views need a token."""
    if settings.web_token is None and settings.web_host not in LOOPBACK_HOSTS:
        return "127.0.0.1"
    return settings.web_host


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
