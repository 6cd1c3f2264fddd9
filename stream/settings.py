"""All of hotpath's configuration: one pydantic-settings class read from ``HOTPATH_*`` variables.

Defaults run on a laptop against the project's own broker on 127.0.0.1:9092. Nested values
(``score``, ``sinks``) are JSON in their variable, e.g. ``HOTPATH_SINKS='[{"name": ...}]'``, or use
``HOTPATH_SCORE__WEIGHT_INTERNET=30`` for one field.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from stream.redact import mask

Priority = Literal["P1", "P2", "P3", "P4", "P5"]
Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
ENV_PREFIX = "HOTPATH_"
NESTED_DELIMITER = "__"
# HOTPATH_* variables that other parts of the project read, not the settings class: the local broker's
# launcher (deploy/kafka/launcher.py), the test suite's container image and the demo's PagerDuty key.
OTHER_VARIABLES = frozenset({
    "HOTPATH_KAFKA_VERSION", "HOTPATH_KAFKA_CACHE", "HOTPATH_KAFKA_PORT", "HOTPATH_KAFKA_RUN_DIR",
    "HOTPATH_KAFKA_CONTROLLER_PORT", "HOTPATH_TEST_KAFKA_IMAGE", "HOTPATH_DEMO_PAGERDUTY_ROUTING_KEY",
    "HOTPATH_OTLP_DECODER",  # forces the compiled or the pure-Python OTLP decoder (stream.ingest.formats.otlp)
})
MAX_COMPARED_NAME = 64
MAX_SHOWN_NAME = 120
# How pydantic-settings names the field whose raw value it could not parse (a JSON value, mostly).
_UNPARSED_FIELD = re.compile(r'field "([A-Za-z0-9_]+)"')


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
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED_DELIMITER,
                                      extra="ignore", use_attribute_docstrings=True)

    # Kafka connection (both Faust/aiokafka and confluent-kafka are configured from these).
    bootstrap_servers: str = "127.0.0.1:9092"
    """Kafka bootstrap servers, comma-separated."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How clients talk to the brokers."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    """SASL mechanism, with a SASL protocol."""
    sasl_username: str | None = None
    """SASL user name."""
    sasl_password: SecretStr | None = None
    """SASL password (never logged)."""
    sasl_oauth_provider: Literal["msk_iam", "token_file", "unsecured"] | None = None
    """Where OAUTHBEARER tokens come from: msk_iam (Amazon MSK IAM), token_file, unsecured (test brokers only)."""
    sasl_oauth_aws_region: str | None = None
    """AWS region of the MSK cluster, for msk_iam (AWS_REGION or the AWS config's region when unset)."""
    sasl_oauth_token_file: Path | None = None
    """File holding the OAUTHBEARER token (a JWT kept fresh by a sidecar), re-read before it expires."""
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
    topic_policy: str = "hotpath.policy"
    """Internal, compacted: the published policy files, one record per file (`hotpath policy publish`)."""
    topic_audit: str = "hotpath.audit"
    """Output, append-only, kept a year: policy publications, suppressions, unsuppressions and expiries."""
    replication_factor: int = Field(default=1, ge=1)
    """Copies of every topic hotpath creates, Faust's changelogs included (3 in production)."""
    min_insync_replicas: int = Field(default=1, ge=1)
    """min.insync.replicas of every topic hotpath creates (2 in production, with acks=all)."""
    compression: Compression = "lz4"
    """Compression of every record hotpath produces (none, gzip, snappy, lz4, zstd); consumers read them all."""
    topics_dir: Path = Path(__file__).resolve().parent.parent / "topics"
    """Folder of topics.yaml and the output JSON Schemas."""

    # Event-time windows.
    window_size_s: float = Field(default=900.0, gt=0)
    """Width of a traffic window: a finding is exercised when traffic touched it within it."""
    window_step_s: float = Field(default=60.0, gt=0)
    """How far a hopping window advances; also the bucket size of per-entity traffic."""
    allowed_lateness_s: float = Field(default=300.0, ge=0)
    """How late (in event time) a record may arrive and still count in its window."""
    max_clock_skew_s: float = Field(default=300.0, ge=0)
    """Records dated further ahead of the worker's clock are dead-lettered (event time is the producer's word)."""
    max_event_age_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    """Older spans and alerts are dead-lettered (findings exempt: still open); replay: from the data's median."""
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
    max_entities_per_span: int = Field(default=128, gt=0)
    """Entities one span may touch (DynamoDB batch calls name up to 100 tables); the rest are dead-lettered."""
    max_entities_per_message: int = Field(default=4096, gt=0)
    """Entities, pods and caller links one OTLP message may name; the rest are dead-lettered."""
    max_unclaimed_entities: int = Field(default=10_000, gt=0)
    """Resources with no finding, asset or exercised_via whose traffic a worker keeps, the latest touched."""
    max_event_record_bytes: int = Field(default=512 * 1024, ge=256 * 1024, le=900 * 1024)
    """Largest hotpath.entity-events record: below Kafka's 1 MB message.max.bytes and max_request_size."""
    dlq_keep_raw: bool = False
    """Dead letters keep keys and values as they were, unmasked (binary as base64); see deploy/acls."""

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
    """Incident webhooks, as a JSON list of {name, kind, url, min_priority, match_owner, match_environment,
    secret_env, secret_file}."""
    allow_plain_http: bool = False
    """Let sinks use plain http to hosts other than loopback (https is required otherwise)."""
    trace_url_template: str = "http://localhost:16686/trace/{trace_id}"
    """Link to a trace in your trace UI: {trace_id} (Jaeger, Tempo) or {xray_trace_id} (X-Ray); sinks and OCSF."""
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
    policy_files: Annotated[list[Path], NoDecode] = []
    """Policy files (Prowler mutelists, hotpath policies) to judge by, comma-separated or JSON; replay: --policy."""
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
    trace_chunk_wait_s: float = Field(default=0.25, ge=0, le=5)
    """Longest a worker lets a small chunk of trace messages fill before routing it (fewer events; adds latency)."""
    log_level: LogLevel = "INFO"
    """Log level of hotpath's JSON logs (any case)."""

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

    @field_validator("web_token")
    @classmethod
    def _token_is_a_secret(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not token.get_secret_value().strip():  # "Bearer " would let anyone in
            raise ValueError("an empty token guards nothing: unset it, or set a secret")
        return token

    @field_validator("policy_files", mode="before")
    @classmethod
    def _path_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list of paths ({exc.msg}, character {exc.pos})") from None
        return [path.strip() for path in value.split(",") if path.strip()]

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("compression", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.window_step_s > self.window_size_s:
            raise ValueError("window_step_s must not exceed window_size_s")
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(f"HOTPATH_MIN_INSYNC_REPLICAS ({self.min_insync_replicas}) must not exceed "
                             f"HOTPATH_REPLICATION_FACTOR ({self.replication_factor}): no write with acks=all "
                             f"could succeed")
        for sink in self.sinks:
            problem = sink.url and insecure_url(sink.url, self.allow_plain_http)
            if problem:
                raise ValueError(f"HOTPATH_SINKS: sink {sink.name!r}: {problem}")
        return self

    @model_validator(mode="after")
    def _check_sasl(self) -> Settings:
        if self.sasl_mechanism == "OAUTHBEARER":
            if self.sasl_oauth_provider is None:
                raise ValueError("sasl_mechanism OAUTHBEARER needs sasl_oauth_provider "
                                 "(msk_iam, token_file or unsecured)")
            if self.sasl_oauth_provider == "token_file" and self.sasl_oauth_token_file is None:
                raise ValueError("sasl_oauth_provider token_file needs sasl_oauth_token_file")
        elif self.security_protocol.startswith("SASL") and not (self.sasl_mechanism and self.sasl_username):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism and sasl_username")
        return self


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def insecure_url(url: str, allow_plain_http: bool = False) -> str | None:
    """What is wrong with a sink's URL for carrying secrets, or None; names the scheme and host only.

    https always; plain http to loopback (a local receiver, the demo, tests), or anywhere when the
    operator says so. The user-info, path and query of the URL may hold secrets and are never shown.
    """
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme == "https" and host:
        return None
    if scheme == "http" and host and (allow_plain_http or _is_loopback(host)):
        return None
    if scheme == "http" and host:
        return (f"url http://{host} must use https (plain http is allowed to loopback only, "
                "unless HOTPATH_ALLOW_PLAIN_HTTP=true)")
    return "url must be https://host/..."


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def web_bind_host(settings: Settings) -> str:
    """Where a web server of hotpath listens: anywhere only when its data views need a token."""
    if settings.web_token is None and not _is_loopback(settings.web_host):
        return "127.0.0.1"
    return settings.web_host


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    location = [part for part in err["loc"] if part != "function-after"]
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    if not location:  # a rule across settings: its message names the variables
        return f"{err['msg'].removeprefix('Value error, ')}{more}"
    name, path = _variable(location)
    given = err.get("input")
    echoed = not path and _echoable(str(location[0])) and given is not None
    shown = f" (got {str(given)[:60]!r})" if echoed else ""
    return f"{name}: {path}{err['msg']}{shown}{more}"


def _variable(location: list) -> tuple[str, str]:
    """The variable an error location belongs to, and where inside its JSON value (``"0.url: "``).

    Fields of a nested model have a variable of their own (``HOTPATH_SCORE__P1_MIN``); list entries do not.
    """
    field = Settings.model_fields.get(str(location[0]))
    rest = [str(part) for part in location[1:]]
    if field is not None and _nested_model(field.annotation) and rest:
        return ENV_PREFIX + NESTED_DELIMITER.join([str(location[0]), *rest]).upper(), ""
    return ENV_PREFIX + str(location[0]).upper(), (".".join(rest) + ": " if rest else "")


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model class of a field that takes ``__`` sub-variables, e.g. ``score``."""
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _echoable(name: str) -> bool:
    """Whether an error may show the value of a setting: only plain values, never a secret or a JSON
    structure (webhook URLs in ``sinks`` may carry credentials)."""
    field = Settings.model_fields.get(name)
    if field is None:
        return False
    annotation = field.annotation
    structured = _nested_model(annotation) or get_origin(annotation) in (list, dict)
    return not structured and annotation is not SecretStr and SecretStr not in get_args(annotation)


def _unparsed(exc: SettingsError) -> str:
    """A value pydantic-settings could not parse (bad JSON), in one line that does not echo the value."""
    found = _UNPARSED_FIELD.search(str(exc))
    name = ENV_PREFIX + found.group(1).upper() if found else f"{ENV_PREFIX}* settings"
    cause = exc.__cause__
    if isinstance(cause, json.JSONDecodeError):
        return f"{name}: not valid JSON: {cause.msg} at line {cause.lineno} column {cause.colno}"
    return f"{name}: {mask(' '.join(str(cause or exc).split()))}"


def load_settings(**overrides) -> Settings:
    """Read the settings, turning any failure into a one-line ConfigError that echoes no secret."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(mask(_one_line(exc))) from None
    except SettingsError as exc:
        raise ConfigError(_unparsed(exc)) from None


def unknown_variables(environ: Mapping[str, str], also_known: Iterable[str] = ()) -> list[str]:
    """One warning per ``HOTPATH_*`` variable that no setting reads, naming the closest known one.

    ``also_known`` names variables read elsewhere, such as the ``secret_env`` of configured sinks.
    """
    known = _known_variables()
    accepted = known | OTHER_VARIABLES | {name.upper() for name in also_known}
    warnings = []
    for variable in sorted(environ):
        upper = variable.upper()
        if not upper.startswith(ENV_PREFIX) or upper in accepted or _free_form_key(upper):
            continue
        # Compared without the prefix, which every name shares and which would make any two look alike; a
        # name longer than any setting's is cut, which bounds the comparison.
        closest = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX)[:MAX_COMPARED_NAME],
                                            sorted(name.removeprefix(ENV_PREFIX) for name in known), n=1, cutoff=0.6)
        hint = f"; did you mean {ENV_PREFIX}{closest[0]}?" if closest else ""
        warnings.append(f"{mask(variable[:MAX_SHOWN_NAME])} is not a hotpath setting and is ignored{hint}")
    return warnings


def _known_variables() -> frozenset[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        variable = ENV_PREFIX + name.upper()
        names.add(variable)
        model = _nested_model(field.annotation)
        if model is not None:
            names.update(variable + NESTED_DELIMITER + sub.upper() for sub in model.model_fields)
    return frozenset(names)


def _free_form_key(variable: str) -> bool:
    """``HOTPATH_AWS_TAG_KEYS__OWNER``: a key of a mapping setting, which may be anything."""
    field_part, delimiter, _ = variable.removeprefix(ENV_PREFIX).partition(NESTED_DELIMITER)
    field = Settings.model_fields.get(field_part.lower())
    return bool(delimiter) and field is not None and get_origin(field.annotation) is dict
