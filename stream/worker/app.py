"""The streaming job: Faust agents as thin wiring around the pure core.

    input topics --ingest agents--> hotpath.entity-events (keyed by entity) --correlate--> hotpath.escalations
                        \\--> hotpath.context (facts every worker reads in full, see stream.entities.context)

Ingest agents are stateless: they decode (:mod:`stream.ingest.decode`), send bad records to the dead-letter
topic with their origin, and re-key what they decode by entity. The correlate agent owns the
``entity-state`` table, co-partitioned with ``hotpath.entity-events``; its changelog restores the
state after a crash or rebalance. A timer sends a tick into each partition this worker owns, so the
re-scoring of live entities runs inside the stream, where table writes belong.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any, get_args

import orjson

from stream.correlate.correlator import Correlator
from stream.correlate.recovery import CLOCK_SKEW_S, HeldWrites, emitted_since
from stream.correlate.state import decode, encode
from stream.deliver.escalation import masked_event
from stream.entities.context import Context
from stream.ingest.decode import Ingest
from stream.ingest.entity_events import (
    TICK,
    EntityPartitioner,
    encode_events,
    event_position,
    read_entity_events,
)
from stream.ingest.formats.assets import load_asset_file
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.router import Router, merge_trace_batches
from stream.kafka.clients import faust_broker_kwargs, faust_durability_kwargs, topic_durability_config
from stream.kafka.deadletter import dead_letter, dead_letter_key
from stream.metrics import Metrics
from stream.models import DecodeError
from stream.redact import mask
from stream.settings import ConfigError, LogLevel, Settings, web_bind_host
from stream.worker.contextfeed import ContextFeed
from stream.worker.web import EscalationBoard, register_views

log = logging.getLogger("hotpath.worker")
SWEEP_EVERY_TICKS = 60
CORRELATE_CHUNK_RECORDS = 256
CORRELATE_CHUNK_WAIT_S = 0.05
CORRELATE_MAX_HELD_STATES = 2048
PUBLISH_RETRY_S = 1.0
PUBLISH_RETRY_MAX_S = 30.0
TRACE_CHUNK_RECORDS = 64
TRACE_CHUNK_WAIT_S = 0.05
TRACE_ROUTE_MAX_TOUCHES = 1024
FETCH_MAX_WAIT_MS = 50
# A crashed worker's partitions move to the others when its group session expires: 10 s instead of
# Faust's 60 s, so a SIGKILLed or partitioned-off worker stalls its entities for seconds, not a minute.
SESSION_TIMEOUT_S = 10.0


@dataclass
class Hotpath:
    """The Faust app and the pure parts it wires together (handy for tests and the web views)."""

    settings: Settings
    app: Any
    context: Context
    correlator: Correlator
    metrics: Metrics
    feed: ContextFeed
    board: EscalationBoard = field(default_factory=EscalationBoard)
    ticks: dict[int, int] = field(default_factory=dict)
    reconciled: set[int] = field(default_factory=set)  # entity partitions checked against published escalations


def create_app(settings: Settings) -> Hotpath:
    import faust

    partitions = entity_partitions(settings)
    datadir = settings.data_dir / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
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
        broker_session_timeout=SESSION_TIMEOUT_S,
        producer_max_batch_size=512 * 1024,
        producer_linger_ms=5,
        consumer_max_fetch_size=4 * 1024 * 1024,
    )
    context = Context(max_path_depth=settings.max_path_depth)
    if settings.asset_file:
        for asset in load_asset_file(settings.asset_file, settings.max_record_bytes, settings.max_json_depth):
            context.add_asset(asset)
    router = Router(context, settings.window_step_s)
    ingest = Ingest(router, DecodeLimits.from_settings(settings, clock=time.time), settings.traces_encoding)
    partitioner = EntityPartitioner(partitions)
    metrics = Metrics()
    table = app.Table("entity-state", default=None, partitions=partitions, value_type=bytes,
                      schema=faust.Schema(key_serializer="json", value_serializer="raw"),
                      extra_topic_configs=topic_durability_config(settings))
    store = HeldWrites(EntityTable(table))  # an entity's state is written once its escalations are acknowledged
    correlator = Correlator(settings, context, store)
    hotpath = Hotpath(settings, app, context, correlator, metrics, ContextFeed(settings, context))

    def topic(name: str):
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    entity_events = topic(settings.topic_entity_events)
    context_topic = topic(settings.topic_context)
    escalations = topic(settings.topic_escalations)
    dlq = topic(settings.topic_dlq)

    async def decoded(event, decode):
        """``decode(value)`` of one input record, or None once a bad record is in the dead-letter topic."""
        # Resolution needs the assets (aliases, exercised_via): they are read before the first record.
        # The wait is inside the stream: Faust drops, unread, what arrives for a stream nobody iterates.
        while not hotpath.feed.caught_up.is_set():
            await asyncio.sleep(0.05)
        message = event.message
        metrics.records_in.labels(message.topic).inc()
        try:
            return decode(event.value)
        except DecodeError as exc:
            await _dead_letter(exc.reason, message)
        except Exception as exc:  # a bug must not stop the stream: park the record, say why
            log.exception("ingest failed on %s/%s@%s", message.topic, message.partition, message.offset)
            await _dead_letter(f"internal error while decoding: {type(exc).__name__}: {exc}", message)
        return None

    async def send_routed(stream_name: str, routed, origin) -> None:
        """Send the events, in records the broker takes, and the facts; ``origin`` is the input record
        an event too large for any record is dead-lettered as."""
        metrics.entity_events.labels(stream_name).inc(len(routed.events))
        for partition, events in partitioner.split(routed.events).items():
            records, too_large = encode_events(events, settings.max_event_record_bytes)
            for value in records:
                await entity_events.send(value=value, partition=partition)
            if too_large:
                await _dead_letter(f"{len(too_large)} entity events over {settings.max_event_record_bytes} bytes "
                                   f"each (HOTPATH_MAX_EVENT_RECORD_BYTES), first on {too_large[0][0]}", origin)
        for key, value in routed.facts:
            await context_topic.send(key=key.encode(), value=orjson.dumps(value))

    def ingest_agent(stream_name: str, topic_name: str) -> None:
        async def agent(stream):
            async for event in stream.events():
                routed = await decoded(event, lambda value: ingest(stream_name, value))
                if routed is not None:
                    await send_routed(stream_name, routed, event.message)

        agent.__name__ = agent.__qualname__ = f"ingest_{stream_name}"
        app.agent(topic(topic_name), name=f"ingest-{stream_name}")(agent)

    @app.agent(topic(settings.topic_traces), name="ingest-traces")
    async def ingest_traces(stream):
        # Trace messages are taken a few at a time and routed as one batch (merge_trace_batches): the
        # entities they share cost one entity event each, not one per message.
        # A chunk is routed in parts of at most TRACE_ROUTE_MAX_TOUCHES touches, which bounds the memory
        # one chunk takes when every message reaches thousands of entities.
        async for chunk in stream.take_events(TRACE_CHUNK_RECORDS, within=TRACE_CHUNK_WAIT_S):
            batches, touches = [], 0
            for event in chunk:
                batch = await decoded(event, ingest.decode_traces)
                if batch is not None:
                    if batch.over_cap:  # what is within the caps is routed; the message says what was not
                        await _dead_letter(batch.over_cap, event.message)
                    batches.append(batch)
                    touches += len(batch.touches)
                if batches and (touches >= TRACE_ROUTE_MAX_TOUCHES or event is chunk[-1]):
                    merged = merge_trace_batches(batches, settings.window_step_s, settings.max_trace_ids)
                    # Trace events fit a record by the entity caps; were one not to, the record completing
                    # the part is its origin.
                    await send_routed("traces", router.traces(merged), event.message)
                    batches, touches = [], 0

    async def _dead_letter(reason: str, message) -> None:
        metrics.decode_errors.labels(message.topic).inc()
        _, key, value = _parked(reason, message, message.value, stage="decode")
        await dlq.send(key=key, value=value)
        metrics.dlq_records.labels("decode").inc()

    ingest_agent("findings", settings.topic_findings)
    ingest_agent("alerts", settings.topic_alerts)
    ingest_agent("assets", settings.topic_assets)

    @app.agent(entity_events, name="correlate")
    async def correlate(stream):
        # Records are taken in chunks: an entity that many records touch is judged and written to the
        # changelog once per chunk, and a chunk's records are acknowledged only after its writes are out.
        # A chunk reaching more than CORRELATE_MAX_HELD_STATES entities is settled in parts, so the
        # decoded states held at once stay few whatever the chunk holds.
        # Each message keeps one reference of ours until the whole chunk is settled: take_events acks
        # a chunk even when settling it failed or was cancelled, and Faust commits an offset only once
        # its last reference is gone, so a chunk whose escalations were not sent is read again.
        async for chunk in stream.take_events(CORRELATE_CHUNK_RECORDS, within=CORRELATE_CHUNK_WAIT_S):
            for event in chunk:
                event.message.incref()
            results, origins = [], {}
            for event in chunk:
                message = event.message
                if message.partition not in hotpath.reconciled:
                    await _reconcile(message.partition, message.timestamp)
                try:
                    events = read_entity_events(event.value)
                except ValueError as exc:  # not what ingest writes: parked whole, the stream goes on
                    await _publish([_parked(f"not an entity-events record: {exc}", message, message.value)])
                    metrics.dlq_records.labels("correlate").inc()
                    continue
                if events is None:  # a tick
                    results += correlator.judge_deferred() + _tick(message.partition)
                    continue
                for index, (entity, record) in enumerate(events):
                    origins.setdefault(entity, []).append((message, record))
                    correlator.process(entity, record, partition=message.partition,
                                       position=event_position(message.offset, index), defer=True)
                    metrics.observe_correlated(message.timestamp)
                if len(store.held) >= CORRELATE_MAX_HELD_STATES:
                    await _settle(results, origins)
                    results, origins = [], {}
            await _settle(results, origins)
            for event in chunk:
                event.ack()  # drops our reference; take_events' own ack then lets the offset be committed

    async def _settle(results: list, origins: dict[str, list]) -> None:
        """Judge the entities the events so far touched, publish the escalations, then write the states.

        An entity that could not be applied or judged keeps the state it had before these events, and
        its events (``origins``: entity -> [(message, record)]) go to the dead-letter topic with the reason.
        """
        results += correlator.judge_deferred()
        failures, correlator.failures = correlator.failures, {}
        results = [e for e in results if e.resource not in failures]  # their states are dropped too
        parked = [_parked(reason, message, orjson.dumps([entity, record]))
                  for entity, reason in failures.items() for message, record in origins.get(entity, ())]
        # Escalations leave hotpath masked (card numbers, secrets), on the topic and every view alike.
        events = [masked_event(escalation.record()) for escalation in results]
        await _publish([(escalations, mask(escalation.finding_uid).encode(), orjson.dumps(event))
                        for escalation, event in zip(results, events, strict=True)] + parked)
        for event in events:  # recorded once sent: a view may lag the stream, never lose from it
            metrics.escalations.labels(event["priority"], event["state"]).inc()
            _show(event)
        metrics.dlq_records.labels("correlate").inc(len(parked))
        for entity, reason in failures.items():
            store.discard(entity)
            log.warning("%s; %s of its events parked in the dead-letter topic", mask(reason),
                        len(origins.get(entity, ())))
        store.release()

    def _parked(reason: str, message, value: bytes | None, stage: str = "correlate") -> tuple:
        """The dead letter of (part of) a record, as a (topic, key, value) to publish."""
        letter = dead_letter(reason, topic=message.topic, partition=message.partition, offset=message.offset,
                             key=message.key, value=value, max_value_bytes=settings.dlq_max_value_bytes,
                             stage=stage, keep_raw=settings.dlq_keep_raw)
        return dlq, dead_letter_key(letter), orjson.dumps(letter)

    async def _publish(records: list[tuple]) -> None:
        """Send each (topic, key, value) and wait until the broker has it; what fails is sent again, never dropped."""
        delay = PUBLISH_RETRY_S
        while records:
            pending = []
            try:
                for topic_, key, value in records:
                    pending.append(await topic_.send(key=key, value=value))
            except Exception:
                log.exception("could not hand %s records to the producer", len(records) - len(pending))
            outcomes = await asyncio.gather(*pending, return_exceptions=True)
            records = [record for record, outcome in zip(records, outcomes, strict=False)
                       if isinstance(outcome, BaseException)] + records[len(pending):]
            if records:
                log.warning("%s records not acknowledged by the broker; sending them again in %.0f s",
                            len(records), delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, PUBLISH_RETRY_MAX_S)

    def _show(event: dict) -> None:
        """Put a sent escalation on the /escalations board; a view must never fail the stream."""
        try:
            hotpath.board.record(event)
        except Exception:
            log.exception("the escalation board refused %s", event.get("escalation_uid"))

    async def _reconcile(partition: int, first_timestamp: float) -> None:
        """Before a newly assigned partition's first event: raise its recovered states to the escalations
        published since then, which a crash may have kept from being recorded (see stream.correlate.recovery)."""
        try:
            published = await asyncio.get_running_loop().run_in_executor(
                None, emitted_since, settings, first_timestamp - CLOCK_SKEW_S)
        except Exception:  # without the check a crash may duplicate a version, never lose one: go on
            log.exception("could not read back published escalations for partition %s", partition)
            published = []
        raised = correlator.reconcile(partition, published,
                                      owns=lambda resource: partitioner.partition(resource) == partition)
        hotpath.reconciled.add(partition)
        if raised:
            log.warning("recovered state of partition %s raised to %s escalations published before a crash",
                        partition, raised)

    def _tick(partition: int) -> list:
        count = hotpath.ticks.get(partition)
        if count is None:  # first tick since this partition was assigned: its state is recovered
            correlator.restore_live(partition)
            count = 0
        hotpath.ticks[partition] = count + 1
        if count % SWEEP_EVERY_TICKS == SWEEP_EVERY_TICKS - 1:
            correlator.sweep(partition)
            horizon = correlator.watermark - settings.stale_windows * settings.window_size_s
            context.prune(horizon)
            router.prune(horizon)
        return correlator.tick(partition)

    @app.timer(interval=settings.tick_interval_s)
    async def send_ticks():
        for tp in app.assignor.assigned_actives():
            if tp.topic == settings.topic_entity_events:
                await entity_events.send(value=TICK, partition=tp.partition)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender, assigned, **_: Any) -> None:
        fetcher = getattr(getattr(app.consumer._thread, "_consumer", None), "_fetcher", None)
        if fetcher is not None:
            fetcher._fetch_max_wait_ms = FETCH_MAX_WAIT_MS

    @app.on_partitions_revoked.connect
    async def on_revoked(sender, revoked, **_: Any) -> None:
        lost = {tp.partition for tp in revoked if tp.topic == settings.topic_entity_events}
        correlator.forget_partitions(lost)
        for partition in lost:
            hotpath.ticks.pop(partition, None)
            hotpath.reconciled.discard(partition)

    @app.task
    async def start_context_feed():
        hotpath.feed.start(asyncio.get_running_loop())

    register_views(hotpath)
    return hotpath


class EntityTable(MutableMapping):
    """The ``entity-state`` table, written outside the context of one event, holding serialized states.

    Faust sends a table write to the changelog partition of the event being processed; the correlate
    agent writes once per chunk of records from several partitions, so each state goes to the
    partition of its own entity's events instead (``state.partition``), which is where Faust would send it.

    States are kept encoded (:mod:`stream.correlate.state`, the changelog's own encoding), not decoded:
    an entity's nested objects take several times the memory of its encoding, and an idle entity is
    only read on a tick or a sweep. The correlator reads each state once per chunk (held writes
    keep the decoded state until the chunk is written), so decoding costs microseconds per entity.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        return decode(self.table.data[key])

    def __setitem__(self, key: str, value: Any) -> None:
        encoded = self.table.data[key] = encode(value)
        self.table.send_changelog(value.partition, key, encoded)

    def __delitem__(self, key: str) -> None:
        partition = self[key].partition
        del self.table.data[key]
        self.table.send_changelog(partition, key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.table.data)

    def __len__(self) -> int:
        return len(self.table.data)


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
    return len(topic.partitions)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loglevel", default=None, type=str.upper, choices=get_args(LogLevel),
                        help="worker log level, any case (default: HOTPATH_LOG_LEVEL)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import faust

    from stream.kafka.topics import TopicsError
    from stream.logs import configure_logging
    from stream.worker.memory import return_large_buffers_to_the_os

    return_large_buffers_to_the_os()
    try:
        hotpath = create_app(settings)
    except TopicsError as exc:  # the broker refused or is not there: one line, not librdkafka's retries
        print(f"hotpath worker: {exc}", file=sys.stderr)
        return 1
    configure_logging(args.loglevel or settings.log_level)
    worker = faust.Worker(hotpath.app, loglevel=args.loglevel or settings.log_level, logging_config=None,
                          override_logging=False)
    try:
        worker.execute_from_commandline()
    finally:
        hotpath.feed.stop()
    return 0
