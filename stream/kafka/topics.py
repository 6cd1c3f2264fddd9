"""Topics as data: ``topics/topics.yaml`` declares every topic; ``hotpath topics apply`` makes the broker agree.

Planning is a pure comparison of the declarations with what the broker reports, so it is safe to run
on every start-up and from every test: it creates missing topics, raises partition counts, repairs
drifted configs, and only reports what Kafka cannot do (lower partitions, change replication).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stream.kafka.clients import topic_durability_config
from stream.settings import ConfigError, Settings

DECLARATIONS_FILE = "topics.yaml"
METADATA_TIMEOUT_S = 6.0
OPERATION_TIMEOUT_S = 30.0
VALID_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
TOPIC_SETTINGS = tuple(name for name in Settings.model_fields if name.startswith("topic_"))
# A TLS alert the broker sent, as OpenSSL words it inside a librdkafka error ("... SSL routines::ssl/tls alert
# bad certificate: SSL alert number 42 ..."; OpenSSL 1.1 says "sslv3 alert ..." or "tlsv13 alert ...").
TLS_ALERT = re.compile(r"\b(?:sslv3|ssl/tls|tlsv1\d*) alert ([a-z ]+[a-z])")
# Alerts a broker sends when its listener has ssl.client.auth=required and the client presents no certificate
# (Kafka's JSSE sends bad_certificate; OpenSSL-based TLS 1.3 servers send certificate_required).
CLIENT_CERTIFICATE_ALERTS = frozenset({"bad certificate", "certificate required"})
# ... and when it does not accept the certificate the client presented.
REJECTED_CERTIFICATE_ALERTS = frozenset({"bad certificate", "certificate unknown", "unknown ca", "certificate expired",
                                         "unsupported certificate", "certificate revoked"})


class TopicsError(Exception):
    """The broker could not be reached or refused a change; the message is one line."""


class KeySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["ignored", "string", "trace-id", "bytes"]
    doc: str


class ValueSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    formats: list[Literal["json", "otlp_proto", "otlp_json"]] = Field(min_length=1)
    json_schema: str | None = Field(default=None, alias="schema", pattern=r"^schemas/[A-Za-z0-9._-]+\.json$")
    doc: str


class TopicDeclaration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    setting: str
    role: Literal["input", "internal", "output"]
    partitions: int = Field(ge=1)
    config: dict[str, str] = {}
    key: KeySpec
    value: ValueSpec

    @field_validator("setting")
    @classmethod
    def _names_a_topic_setting(cls, setting: str) -> str:
        if setting not in TOPIC_SETTINGS:
            raise ValueError(f"{setting!r} is not one of the Settings fields {', '.join(TOPIC_SETTINGS)}")
        return setting

    @field_validator("config", mode="before")
    @classmethod
    def _as_kafka_strings(cls, config: Any) -> Any:
        # YAML gives ints, floats and booleans; Kafka describes every config value as a string.
        if not isinstance(config, dict):
            return config
        return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in config.items()}

    @model_validator(mode="after")
    def _json_outputs_have_a_schema(self) -> TopicDeclaration:
        if self.role == "output" and "json" in self.value.formats and not self.value.json_schema:
            raise ValueError("an output topic with JSON values must name its JSON Schema (value.schema)")
        return self


class TopicCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topics: list[TopicDeclaration] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_declaration_per_topic(self) -> TopicCatalog:
        for attribute in ("id", "setting"):
            values = [getattr(topic, attribute) for topic in self.topics]
            repeated = sorted({value for value in values if values.count(value) > 1})
            if repeated:
                raise ValueError(f"{attribute} declared more than once: {', '.join(repeated)}")
        missing = sorted(set(TOPIC_SETTINGS) - {topic.setting for topic in self.topics})
        if missing:
            raise ValueError(f"no declaration for the topic settings {', '.join(missing)}")
        return self


def load_declarations(topics_dir: Path) -> list[TopicDeclaration]:
    """Read and validate ``topics.yaml``; any problem is a one-line ConfigError naming the file."""
    path = topics_dir / DECLARATIONS_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {' '.join(str(exc).split())}") from None
    try:
        return TopicCatalog.model_validate(raw).topics
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"]) or "top level"
        raise ConfigError(f"{path}: {where}: {err['msg']}") from None


@dataclass(frozen=True)
class DesiredTopic:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


@dataclass(frozen=True)
class ObservedTopic:
    partitions: int
    replication_factor: int
    config: dict[str, str]


def desired_topics(settings: Settings, prefix: str = "") -> list[DesiredTopic]:
    """The declarations with their configured (and optionally prefixed) names and the configured durability."""
    durability = topic_durability_config(settings)
    desired = []
    for declaration in load_declarations(settings.topics_dir):
        name = prefix + getattr(settings, declaration.setting)
        if not VALID_TOPIC_NAME.match(name) or name in (".", ".."):
            source = f"HOTPATH_{declaration.setting.upper()}" + (" with --prefix" if prefix else "")
            raise ConfigError(f"{source}: {name!r} is not a valid Kafka topic name (letters, digits, . _ -)")
        desired.append(DesiredTopic(name, declaration.partitions, settings.replication_factor,
                                    {**declaration.config, **durability}))
    return desired


@dataclass(frozen=True)
class Change:
    """One change the broker needs: create a topic, raise its partitions, or set configs."""

    topic: DesiredTopic
    kind: Literal["create", "partitions", "config"]
    partitions_before: int = 0
    config_diff: tuple[tuple[str, str | None, str], ...] = ()

    def describe(self, dry_run: bool = False) -> str:
        name = self.topic.name
        if self.kind == "create":
            count = self.topic.partitions
            text = f"create {name} ({count} partition{'' if count == 1 else 's'})"
        elif self.kind == "partitions":
            text = f"raise partitions of {name} from {self.partitions_before} to {self.topic.partitions}"
        else:
            diff = ", ".join(f"{key} {before} -> {after}" for key, before, after in self.config_diff)
            text = f"update config of {name}: {diff}"
        verb, rest = text.split(" ", 1)
        past = {"create": "created", "raise": "raised", "update": "updated"}[verb]
        return f"would {verb} {rest}" if dry_run else f"{past} {rest}"


@dataclass
class TopicPlan:
    changes: list[Change] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # what Kafka cannot do; reported, never attempted
    unchanged: list[str] = field(default_factory=list)


def plan(desired: list[DesiredTopic], observed: dict[str, ObservedTopic]) -> TopicPlan:
    """Compare declarations with the broker's view. Pure: no I/O."""
    result = TopicPlan()
    for topic in desired:
        current = observed.get(topic.name)
        if current is None:
            result.changes.append(Change(topic, "create"))
            continue
        changed = False
        if topic.partitions > current.partitions:
            result.changes.append(Change(topic, "partitions", partitions_before=current.partitions))
            changed = True
        elif topic.partitions < current.partitions:
            result.notices.append(f"{topic.name} has {current.partitions} partitions, declared {topic.partitions}: "
                                  f"Kafka cannot remove partitions, left as is")
        if topic.replication_factor != current.replication_factor:
            result.notices.append(f"{topic.name} has replication factor {current.replication_factor}, configured "
                                  f"{topic.replication_factor}: change it with kafka-reassign-partitions")
        drift = tuple((key, current.config.get(key), value) for key, value in sorted(topic.config.items())
                      if current.config.get(key) != value)
        if drift:
            result.changes.append(Change(topic, "config", config_diff=drift))
            changed = True
        if not changed:
            result.unchanged.append(topic.name)
    return result


class BrokerAdmin:
    """An AdminClient that remembers why the broker refused it, to explain a failure in one line."""

    def __init__(self, settings: Settings) -> None:
        from stream.kafka.clients import admin

        self.bootstrap = settings.bootstrap_servers
        self.client_certificate = settings.ssl_cert_file is not None
        self.refusal: str | None = None  # why the broker refused, as the rest of "Kafka at HOST ..."
        self.client = admin(settings, error_cb=self._note)

    def _note(self, error) -> None:
        from confluent_kafka import KafkaError

        code, text = error.code(), error.str()
        alert = TLS_ALERT.search(text)
        # A TLS alert from the broker arrives as a transport error once TLS 1.3 has let the client finish its
        # side of the handshake (the broker checks the client's certificate after that), or as an SSL error.
        if alert and code in (KafkaError._TRANSPORT, KafkaError._SSL):
            self.refusal = self._tls_refusal(alert.group(1))
        elif code in (KafkaError._AUTHENTICATION, KafkaError._SSL):
            self.refusal = f"refused the connection: {text}; check the HOTPATH_SASL_* and HOTPATH_SSL_* settings"

    def _tls_refusal(self, alert: str) -> str:
        refused = f'refused the TLS handshake (TLS alert "{alert}")'
        if not self.client_certificate and alert in CLIENT_CERTIFICATE_ALERTS:
            return (f"{refused}: its listener requires a client certificate; "
                    f"set HOTPATH_SSL_CERT_FILE and HOTPATH_SSL_KEY_FILE")
        if self.client_certificate and alert in REJECTED_CERTIFICATE_ALERTS:
            return (f"{refused}: it does not accept the client certificate in HOTPATH_SSL_CERT_FILE; "
                    f"use one signed by a CA in the broker's truststore")
        return f"{refused}; check the HOTPATH_SSL_* and HOTPATH_SECURITY_PROTOCOL settings"

    def metadata(self):
        """Cluster metadata, or a TopicsError saying in one line why there is none."""
        from confluent_kafka import KafkaError, KafkaException

        try:
            return self.client.list_topics(timeout=METADATA_TIMEOUT_S)
        except KafkaException as exc:
            error = exc.args[0]
            self.client.poll(0)  # deliver pending error callbacks: an authentication failure explains a timeout
            if self.refusal:
                raise TopicsError(f"Kafka at {self.bootstrap} {self.refusal}") from None
            if error.code() in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN,
                                KafkaError._RESOLVE):
                raise TopicsError(f"cannot reach Kafka at {self.bootstrap}: start it with `make kafka-up` "
                                  f"or set HOTPATH_BOOTSTRAP_SERVERS") from None
            raise TopicsError(f"Kafka at {self.bootstrap} refused the metadata request: {error.str()}") from None


def observe(broker: BrokerAdmin, names: list[str]) -> dict[str, ObservedTopic]:
    """What the broker has for the given topic names (absent names are missing topics)."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    present = broker.metadata().topics
    existing = [name for name in names if name in present and present[name].error is None]
    if not existing:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in existing]
    futures = broker.client.describe_configs(resources, request_timeout=OPERATION_TIMEOUT_S)
    observed = {}
    for resource, future in futures.items():
        entries = _result(future, f"describe the config of {resource.name}")
        partitions = present[resource.name].partitions
        replication = min((len(p.replicas) for p in partitions.values()), default=0)
        observed[resource.name] = ObservedTopic(
            partitions=len(partitions),
            replication_factor=replication,
            config={key: entry.value for key, entry in entries.items()},
        )
    return observed


def execute(topic_plan: TopicPlan, client) -> None:
    """Send the plan's changes to the broker, one batched request per kind of change."""
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import (
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewPartitions,
        NewTopic,
        ResourceType,
    )

    by_kind: dict[str, list[Change]] = {"create": [], "partitions": [], "config": []}
    for change in topic_plan.changes:
        by_kind[change.kind].append(change)
    if by_kind["create"]:
        new = [NewTopic(c.topic.name, num_partitions=c.topic.partitions,
                        replication_factor=c.topic.replication_factor, config=c.topic.config)
               for c in by_kind["create"]]
        for name, future in client.create_topics(new, operation_timeout=OPERATION_TIMEOUT_S).items():
            # Another process applying the same declarations at the same moment is not an error.
            _result(future, f"create {name}", tolerate=KafkaError.TOPIC_ALREADY_EXISTS)
    if by_kind["partitions"]:
        raised = [NewPartitions(c.topic.name, c.topic.partitions) for c in by_kind["partitions"]]
        for name, future in client.create_partitions(raised, operation_timeout=OPERATION_TIMEOUT_S).items():
            _result(future, f"raise the partitions of {name}")
    if by_kind["config"]:
        resources = [
            ConfigResource(ResourceType.TOPIC, c.topic.name, incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, _, value in c.config_diff
            ])
            for c in by_kind["config"]
        ]
        for resource, future in client.incremental_alter_configs(resources).items():
            _result(future, f"update the config of {resource.name}")


def reconcile(settings: Settings, prefix: str = "", dry_run: bool = False) -> TopicPlan:
    """Plan against the broker and, unless ``dry_run``, apply the plan; returns the plan.

    Returns only once the broker reports the new state, so callers can produce right away and an
    immediate second run sees nothing to do.
    """
    desired = desired_topics(settings, prefix)
    broker = BrokerAdmin(settings)
    require_enough_brokers(settings, broker.metadata())
    topic_plan = plan(desired, observe(broker, [topic.name for topic in desired]))
    if not dry_run and topic_plan.changes:
        execute(topic_plan, broker.client)
        _await_settled(broker, [change.topic for change in topic_plan.changes])
    return topic_plan


def require_enough_brokers(settings: Settings, metadata) -> None:
    """A TopicsError unless the cluster has a broker for every copy the settings ask of a topic."""
    brokers = len(metadata.brokers)
    if settings.replication_factor > brokers:
        raise TopicsError(f"HOTPATH_REPLICATION_FACTOR is {settings.replication_factor}, but the cluster at "
                          f"{settings.bootstrap_servers} has {brokers} broker{'' if brokers == 1 else 's'}: "
                          f"lower the setting or add brokers")


def plan_topics(settings: Settings, prefix: str = "") -> TopicPlan:
    """What ``apply`` would change, without changing anything."""
    return reconcile(settings, prefix, dry_run=True)


def apply_topics(settings: Settings, prefix: str = "", dry_run: bool = False) -> list[str]:
    """Make the broker match ``topics.yaml``; returns one line per change made (or, dry, to be made)."""
    return [change.describe(dry_run) for change in reconcile(settings, prefix, dry_run).changes]


def _result(future, action: str, tolerate: int | None = None):
    from confluent_kafka import KafkaException

    try:
        return future.result()
    except KafkaException as exc:
        error = exc.args[0]
        if tolerate is not None and error.code() == tolerate:
            return None
        raise TopicsError(f"could not {action}: {error.str()}") from None


def _await_settled(broker: BrokerAdmin, changed: list[DesiredTopic]) -> None:
    """Poll until the broker reports every changed topic as declared (metadata and configs propagate
    asynchronously in KRaft)."""
    deadline = time.monotonic() + OPERATION_TIMEOUT_S
    while True:
        pending = plan(changed, observe(broker, [topic.name for topic in changed])).changes
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(sorted({change.topic.name for change in pending}))
            raise TopicsError(f"the broker did not report the changes to {names} within {OPERATION_TIMEOUT_S:.0f}s")
        time.sleep(0.1)

