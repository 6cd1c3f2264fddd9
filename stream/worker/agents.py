"""The Faust agents, timer and rebalance hooks: a few lines of wiring each over the engine.

    input topics --ingest agents--> hotpath.entity-events (keyed by entity) --correlate--> hotpath.escalations
                        \\--> hotpath.context (facts every worker reads in full, see stream.entities.context)

Ingest agents are stateless: they decode, send bad records to the dead-letter topic with their
origin, and re-key what they decode by entity. The correlate agent drives
:class:`stream.correlate.engine.Engine` over chunks of ``hotpath.entity-events`` and does the part
that needs Kafka: publishing what a settled chunk asks, waiting for the broker, and reading back the
escalations already published when a partition is newly assigned.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import orjson

from stream.correlate.engine import CHUNK_RECORDS, Engine, Parked
from stream.correlate.recovery import CLOCK_SKEW_S, emitted_since
from stream.deliver.escalation import masked_event
from stream.ingest.entity_events import TICK, EntityPartitioner, encode_events
from stream.ingest.router import Routed, TraceParts
from stream.kafka.deadletter import dead_letter, dead_letter_key
from stream.models import DecodeError
from stream.policy.audit import audit_records
from stream.redact import mask
from stream.worker.faust_private import shorten_fetch_wait
from stream.worker.heap import freeze_start_up_heap
from stream.worker.pacing import ChunkPacer

if TYPE_CHECKING:
    from stream.worker.app import Hotpath

log = logging.getLogger("hotpath.worker")
CHUNK_WAIT_S = 0.05
PUBLISH_RETRY_S = 1.0
PUBLISH_RETRY_MAX_S = 30.0
TRACE_CHUNK_RECORDS = 64
# Spans (counted per entity touched) a trace chunk is let fill to: under what a lone worker's chunks hold at its
# full rate (at 16,384 it paused now and then with records waiting in Kafka, and lost 15 % of its throughput),
# far over what a worker reading a quarter of the benchmark's traffic gathers in CHUNK_WAIT_S.
TRACE_CHUNK_SPANS = 8_192
FETCH_MAX_WAIT_MS = 50
FEED_WAIT_S = 0.05
INGEST_STREAMS = ("findings", "alerts", "assets")


class Agents:
    """The worker's topics and the coroutines Faust runs over them."""

    def __init__(self, hotpath: Hotpath, partitioner: EntityPartitioner) -> None:
        self.hotpath = hotpath
        self.settings = hotpath.settings
        self.engine: Engine = hotpath.engine
        self.metrics = hotpath.metrics
        self.partitioner = partitioner
        self.entity_events = self._topic(self.settings.topic_entity_events)
        self.context_topic = self._topic(self.settings.topic_context)
        self.escalations = self._topic(self.settings.topic_escalations)
        self.dlq = self._topic(self.settings.topic_dlq)
        self.audit = self._topic(self.settings.topic_audit)

    def _topic(self, name: str):
        return self.hotpath.app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                                      value_serializer="raw")

    def register(self) -> None:
        app, settings = self.hotpath.app, self.settings
        for stream_name in INGEST_STREAMS:
            topic = self._topic(getattr(settings, f"topic_{stream_name}"))
            app.agent(topic, name=f"ingest-{stream_name}")(self._ingest_agent(stream_name))
        app.agent(self._topic(settings.topic_traces), name="ingest-traces")(self.ingest_traces)
        app.agent(self.entity_events, name="correlate")(self.correlate)
        app.timer(interval=settings.tick_interval_s)(self.send_ticks)
        app.on_partitions_assigned.connect(self.on_assigned)
        app.on_partitions_revoked.connect(self.on_revoked)
        app.task(self.start_feeds)
        app.task(self.freeze_heap_once_read)

    # -- ingest ---------------------------------------------------------------------------------

    def _ingest_agent(self, stream_name: str):
        async def agent(stream):
            async for event in stream.events():
                routed = await self._decoded(event, lambda value: self.engine.ingest(stream_name, value))
                if routed is not None:
                    await self._send_routed(stream_name, routed, event.message)

        agent.__name__ = agent.__qualname__ = f"ingest_{stream_name}"
        return agent

    async def ingest_traces(self, stream) -> None:
        # Trace messages are taken a few at a time and routed together (TraceParts): the entities they
        # share cost one entity event each, not one per message.
        # A chunk short of TRACE_CHUNK_SPANS is followed by a pause (stream.worker.pacing) while more gather,
        # so a worker that reads a share of the topic routes chunks about as large as a lone worker's.
        parts = TraceParts(self.engine.router, self.settings.window_step_s, self.settings.max_trace_ids)
        loop = asyncio.get_running_loop()
        pacer = ChunkPacer(TRACE_CHUNK_SPANS, self.settings.trace_chunk_wait_s, loop.time())
        async for chunk in stream.take_events(TRACE_CHUNK_RECORDS, within=CHUNK_WAIT_S):
            for event in chunk:
                batch = await self._decoded(event, self.engine.ingest.decode_traces)
                if batch is None:
                    continue
                if batch.over_cap:  # what is within the caps is routed; the message says what was not
                    await self._dead_letter(batch.over_cap, event.message)
                # Trace events fit a record by the entity caps; were one not to, the record completing
                # the part is its origin.
                if (routed := parts.add(batch)) is not None:
                    await self._send_routed("traces", routed, event.message)
            if (routed := parts.flush()) is not None:
                await self._send_routed("traces", routed, chunk[-1].message)
            await asyncio.sleep(pacer.pause(parts.spans, loop.time(), full=len(chunk) == TRACE_CHUNK_RECORDS))

    async def _decoded(self, event, decode):
        """``decode(value)`` of one input record, or None once a bad record is in the dead-letter topic."""
        # Resolution needs the assets (aliases, exercised_via): they are read before the first record.
        # The wait is inside the stream: Faust drops, unread, what arrives for a stream nobody iterates.
        await caught_up(self.hotpath.feed)
        message = event.message
        self.metrics.records_in.labels(message.topic).inc()
        try:
            return decode(event.value)
        except DecodeError as exc:
            await self._dead_letter(exc.reason, message)
        except Exception as exc:  # a bug must not stop the stream: park the record, say why
            log.exception("ingest failed on %s/%s@%s", message.topic, message.partition, message.offset)
            await self._dead_letter(f"internal error while decoding: {type(exc).__name__}: {exc}", message)
        return None

    async def _send_routed(self, stream_name: str, routed: Routed, origin) -> None:
        """Send the events, in records the broker takes, and the facts; ``origin`` is the input record
        an event too large for any record is dead-lettered as."""
        limit = self.settings.max_event_record_bytes
        self.metrics.entity_events.labels(stream_name).inc(len(routed.events))
        for partition, events in self.partitioner.split(routed.events).items():
            records, too_large = encode_events(events, limit)
            for value in records:
                await self.entity_events.send(value=value, partition=partition)
            if too_large:
                await self._dead_letter(f"{len(too_large)} entity events over {limit} bytes each "
                                        f"(HOTPATH_MAX_EVENT_RECORD_BYTES), first on {too_large[0][0]}", origin)
        for key, value in routed.facts:
            await self.context_topic.send(key=key.encode(), value=orjson.dumps(value))

    async def _dead_letter(self, reason: str, message) -> None:
        self.metrics.decode_errors.labels(message.topic).inc()
        await self.dlq.send(**self._letter(Parked(reason, message, message.value), stage="decode"))
        self.metrics.dlq_records.labels("decode").inc()

    def _letter(self, parked: Parked, stage: str) -> dict[str, bytes]:
        """The dead letter of (part of) a record, as the key and value to send."""
        message = parked.origin
        letter = dead_letter(parked.reason, topic=message.topic, partition=message.partition, offset=message.offset,
                             key=message.key, value=parked.value, max_value_bytes=self.settings.dlq_max_value_bytes,
                             stage=stage, keep_raw=self.settings.dlq_keep_raw)
        return {"key": dead_letter_key(letter), "value": orjson.dumps(letter)}

    # -- correlate ------------------------------------------------------------------------------

    async def correlate(self, stream) -> None:
        # Each message keeps one reference of ours until the whole chunk is settled: take_events acks
        # a chunk even when settling it failed or was cancelled, and Faust commits an offset only once
        # its last reference is gone, so a chunk whose escalations were not sent is read again.
        async for chunk in stream.take_events(CHUNK_RECORDS, within=CHUNK_WAIT_S):
            for event in chunk:
                event.message.incref()
            await self._adopt_policy()
            for event in chunk:
                message = event.message
                if self.engine.needs_reconcile(message.partition):
                    await self._reconcile(message.partition, message.timestamp)
                applied = self.engine.apply(message.partition, message.offset, event.value, message)
                self.metrics.observe_correlated(message.timestamp, applied)
                drop_value(event)
                if self.engine.full:
                    await self._settle()
            await self._settle()
            for event in chunk:
                event.ack()  # drops our reference; take_events' own ack then lets the offset be committed

    async def _settle(self) -> None:
        """Publish what the engine's settled chunk asks, wait for the broker, then let it write the states."""
        settlement = self.engine.settle()
        # Escalations leave hotpath masked (card numbers, secrets), on the topic and every view alike.
        events = [masked_event(escalation.record()) for escalation in settlement.escalations]
        records = [(self.escalations, {"key": mask(escalation.finding_uid).encode(), "value": orjson.dumps(event)})
                   for escalation, event in zip(settlement.escalations, events, strict=True)]
        # The audit trail goes out with the escalations it records, so neither is acknowledged without the
        # other; the board still holds each finding's escalation before these.
        audit = [(self.audit, {"key": key.encode(), "value": orjson.dumps(value)})
                 for key, value in audit_records(events, self.hotpath.board.suppression_of)]
        await self._publish(records + audit + [(self.dlq, self._letter(p, "correlate")) for p in settlement.parked])
        for event in events:  # recorded once sent: a view may lag the stream, never lose from it
            self.metrics.escalations.labels(event["priority"], event["state"]).inc()
            self._show(event)
        self.metrics.dlq_records.labels("correlate").inc(len(settlement.parked))
        for reason, parked in settlement.failures:
            log.warning("%s; %s of its events parked in the dead-letter topic", mask(reason), parked)
        self.engine.release()

    async def _adopt_policy(self) -> None:
        """Before a chunk is judged: the published policy read up to where it stood at start-up, and the
        newest version read since handed to the engine, which re-judges its findings by it."""
        feed = self.hotpath.policy_feed
        await caught_up(feed)  # judging by an older policy would page what a newer one mutes
        policy = feed.take()
        if policy is not None:
            self.engine.set_policy(policy)
            log.info("judging by policy version %s", policy.digest[:12])

    async def _publish(self, records: list[tuple[Any, dict[str, bytes]]]) -> None:
        """Send each (topic, key and value) and wait until the broker has it; what fails is sent again."""
        delay = PUBLISH_RETRY_S
        while records:
            pending = []
            try:
                for topic, record in records:
                    pending.append(await topic.send(**record))
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

    def _show(self, event: dict) -> None:
        """Put a sent escalation on the /escalations board; a view must never fail the stream."""
        try:
            self.hotpath.board.record(event)
        except Exception:
            log.exception("the escalation board refused %s", event.get("escalation_uid"))

    async def _reconcile(self, partition: int, first_timestamp: float) -> None:
        """Before a newly assigned partition's first event: read the escalations published since then,
        which a crash may have kept from being recorded, for the engine to raise its states to."""
        try:
            published = await asyncio.get_running_loop().run_in_executor(
                None, emitted_since, self.settings, first_timestamp - CLOCK_SKEW_S)
        except Exception:  # without the check a crash may duplicate a version, never lose one: go on
            log.exception("could not read back published escalations for partition %s", partition)
            published = []
        raised = self.engine.reconcile(partition, published,
                                       owns=lambda resource: self.partitioner.partition(resource) == partition)
        if raised:
            log.warning("recovered state of partition %s raised to %s escalations published before a crash",
                        partition, raised)

    # -- timer, rebalance, feeds ----------------------------------------------------------------

    async def send_ticks(self, app) -> None:
        """A tick into each entity partition this worker owns: re-scoring runs inside the stream."""
        for tp in app.assignor.assigned_actives():
            if tp.topic == self.settings.topic_entity_events:
                await self.entity_events.send(value=TICK, partition=tp.partition)

    async def on_assigned(self, sender, assigned, **_: Any) -> None:
        shorten_fetch_wait(self.hotpath.app, FETCH_MAX_WAIT_MS)

    async def on_revoked(self, sender, revoked, **_: Any) -> None:
        self.engine.revoked({tp.partition for tp in revoked if tp.topic == self.settings.topic_entity_events})

    async def start_feeds(self) -> None:
        self.hotpath.feed.start(asyncio.get_running_loop())
        self.hotpath.policy_feed.start(asyncio.get_running_loop())

    async def freeze_heap_once_read(self) -> None:
        """Once the shared context and the policy are read, what start-up built is frozen (stream.worker.heap)."""
        await caught_up(self.hotpath.feed, self.hotpath.policy_feed)
        frozen = freeze_start_up_heap()
        log.info("start-up heap frozen: %s objects out of the garbage collector's walks", frozen)


async def caught_up(*feeds) -> None:
    """Until each feed has read its topic up to where it stood at start-up (its thread sets ``caught_up``)."""
    while not all(feed.caught_up.is_set() for feed in feeds):
        await asyncio.sleep(FEED_WAIT_S)


def drop_value(event) -> None:
    """Let go of an applied record's bytes: until its chunk is settled only its position is needed (the engine
    keeps what a dead letter needs), and a chunk of 256 records held whole until then grew the heap for good."""
    event.value = event.message.value = None
