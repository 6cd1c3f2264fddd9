"""The streaming job's Faust app: its settings, the entity-state table and the engine, wired by
:mod:`stream.worker.agents`.

The correlate agent owns the ``entity-state`` table, co-partitioned with ``hotpath.entity-events``; its
changelog restores the state after a crash or rebalance. A timer sends a tick into each partition this
worker owns, so the re-scoring of live entities runs inside the stream, where table writes belong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream.correlate.engine import Engine
from stream.entities.context import Context
from stream.ingest.entity_events import EntityPartitioner
from stream.ingest.formats.assets import load_asset_file
from stream.kafka.clients import GROUP_SESSION_TIMEOUT_S, topic_durability_config
from stream.metrics import Metrics
from stream.policy.check import policy_or_config_error
from stream.settings import ConfigError, Settings, web_bind_host
from stream.worker.agents import Agents
from stream.worker.contextfeed import ContextFeed
from stream.worker.faust_config import faust_broker_kwargs, faust_durability_kwargs
from stream.worker.policyfeed import PolicyFeed
from stream.worker.table import EntityTable
from stream.worker.web import EscalationBoard, register_views

STATE_TABLE = "entity-state"


@dataclass
class Hotpath:
    """The Faust app and the pure parts it wires together (handy for tests and the web views)."""

    settings: Settings
    app: Any
    engine: Engine
    metrics: Metrics
    feed: ContextFeed
    policy_feed: PolicyFeed
    board: EscalationBoard = field(default_factory=EscalationBoard)

    @property
    def context(self) -> Context:
        return self.engine.context


def create_app(settings: Settings) -> Hotpath:
    import faust

    policy = policy_or_config_error(settings.policy_files)  # a bad file stops start-up before Kafka is asked
    partitions = entity_partitions(settings)
    app = faust_app(settings, partitions)
    table = app.Table(STATE_TABLE, default=None, partitions=partitions, value_type=bytes,
                      schema=faust.Schema(key_serializer="json", value_serializer="raw"),
                      extra_topic_configs=topic_durability_config(settings))
    engine = Engine(settings, EntityTable(table), policy=policy)
    if settings.asset_file:
        for asset in load_asset_file(settings.asset_file, settings.max_record_bytes, settings.max_json_depth):
            engine.route("assets", asset)
    metrics = Metrics()
    context_feed = ContextFeed(settings, engine.context, metrics.feed_records, engine.router)
    hotpath = Hotpath(settings, app, engine, metrics, context_feed, PolicyFeed(settings, metrics.feed_records))
    Agents(hotpath, EntityPartitioner(partitions)).register()
    register_views(hotpath)
    return hotpath


def faust_app(settings: Settings, partitions: int):
    """The Faust App, raw bytes in and out, with only hotpath's web views."""
    import faust

    datadir = settings.data_dir / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.app_id,
        **faust_broker_kwargs(settings),
        **faust_durability_kwargs(settings),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=partitions,
        topic_allow_declare=True,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind=web_bind_host(settings),
        web_port=settings.web_port,
        web_in_thread=False,
        # Faust's own views would serve raw table state, the cluster's layout and sensor internals to
        # whoever reaches the port: hotpath's views (stream.worker.web) are the only ones.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        datadir=str(datadir),
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        broker_session_timeout=GROUP_SESSION_TIMEOUT_S,
        producer_max_batch_size=512 * 1024,
        producer_linger_ms=5,
        consumer_max_fetch_size=4 * 1024 * 1024,
    )


def entity_partitions(settings: Settings) -> int:
    """The entity topic's partition count, which the state table must share (co-partitioning).

    Asked with confluent-kafka before Faust starts: aiokafka retries a refused login for ever, while
    this probe fails at once with one line (TopicsError) naming the cause.
    """
    from stream.kafka.topics import BrokerAdmin, require_enough_brokers

    metadata = BrokerAdmin(settings).metadata()
    require_enough_brokers(settings, metadata)  # or Faust would fail to create the changelog, with a traceback
    topic = metadata.topics.get(settings.topic_entity_events)
    if topic is None or topic.error is not None or not topic.partitions:
        raise ConfigError(f"topic {settings.topic_entity_events} does not exist on {settings.bootstrap_servers}: "
                          f"run `hotpath topics apply` first")
    changelog = metadata.topics.get(state_changelog(settings))
    if changelog is not None and changelog.error is None and len(changelog.partitions) != len(topic.partitions):
        # Faust would write states to changelog partitions that do not exist, and recover none of them.
        raise ConfigError(f"topic {settings.topic_entity_events} has {len(topic.partitions)} partitions but the entity "
                          f"state's changelog {state_changelog(settings)} has {len(changelog.partitions)}: raising the "
                          f"partitions moves entities away from their state (README, \"Choosing the partition count\")")
    return len(topic.partitions)


def state_changelog(settings: Settings) -> str:
    """The topic Faust keeps the ``entity-state`` table's changelog in."""
    return f"{settings.app_id}-{STATE_TABLE}-changelog"
