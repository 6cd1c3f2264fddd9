"""The in-process pipeline: the worker's own work on the trace batches, with no Kafka and no Faust between stages.

:class:`Pipeline` drives the one :class:`stream.correlate.engine.Engine` the worker uses, stage by stage as
the worker's agents do (stream/worker/agents.py): trace messages decoded ``TRACE_CHUNK_RECORDS`` at a
time, merged and routed in parts (``TraceParts``), split by entity-events partition and encoded as the
records the ingest agent sends; each record applied as the correlate agent applies it, the chunk settled
and released every ``CHUNK_RECORDS`` records (or when the engine is full), and every partition ticked at
each window step of event time (the worker's timer ticks in wall time; ``hotpath replay`` ticks the same
way). What the worker adds on top of this is the plumbing: ``plumbing_ratio`` in the benchmark is the
worker's rate over this one.

The same driver says what the workers should end with on any traffic (``Pipeline.events``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from stream.correlate.engine import CHUNK_RECORDS, Engine
from stream.correlate.state import EncodedStates
from stream.demo.scenario import Scenario
from stream.ingest.entity_events import EntityPartitioner, encode_events
from stream.ingest.router import Routed, TraceParts
from stream.kafka.topics import desired_topics
from stream.settings import Settings
from stream.worker.agents import TRACE_CHUNK_RECORDS

Item = tuple[str, bytes]  # (input stream, record value)


def entity_partitions(settings: Settings) -> int:
    """The partition count topics.yaml gives ``hotpath.entity-events`` (what a fresh deployment has)."""
    return next(topic.partitions for topic in desired_topics(settings) if topic.name == settings.topic_entity_events)


class Pipeline:
    """The worker's stages in one process, over records given in the order a worker would read them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = Engine(settings, EncodedStates())
        self.partitions = entity_partitions(settings)
        self.partitioner = EntityPartitioner(self.partitions)
        self.offsets = [0] * self.partitions
        self.unsettled = 0  # entity-event records applied since the last settle
        self.next_tick: float | None = None
        self.events: list[dict[str, Any]] = []
        for partition in range(self.partitions):
            self.engine.tick(partition)  # assigned, its (empty) state restored, before the first record

    def load(self, scenario: Scenario) -> None:
        """The asset inventory and the findings, which the benchmark's workers hold before the traffic."""
        for asset in scenario.assets:
            self.engine.route("assets", asset)
        for value in scenario.findings:
            self.send(self.engine.ingest("findings", value))
        self.settle()

    def play(self, items: Iterable[Item]) -> None:
        """Input records in order: trace messages in chunks as the ingest agent takes them, others one by one."""
        chunk: list[bytes] = []
        for stream, value in items:
            if stream == "traces":
                chunk.append(value)
                if len(chunk) == TRACE_CHUNK_RECORDS:
                    self.traces(chunk)
                    chunk = []
            else:
                self.send(self.engine.ingest(stream, value))
        if chunk:
            self.traces(chunk)
        self.tick()
        self.settle()

    def traces(self, values: list[bytes]) -> None:
        """One chunk of trace messages, merged and routed in parts as the ingest agent routes a chunk."""
        parts = TraceParts(self.engine.router, self.settings.window_step_s, self.settings.max_trace_ids)
        for value in values:
            if (routed := parts.add(self.engine.ingest.decode_traces(value))) is not None:
                self.send(routed)
        if (routed := parts.flush()) is not None:
            self.send(routed)

    def send(self, routed: Routed) -> None:
        """The routed events as entity-events records, each applied as the correlate agent applies it."""
        for partition, events in self.partitioner.split(routed.events).items():
            records, too_large = encode_events(events, self.settings.max_event_record_bytes)
            if too_large:
                raise ValueError(f"{len(too_large)} entity events over HOTPATH_MAX_EVENT_RECORD_BYTES")
            for value in records:
                self.apply(partition, value)

    def apply(self, partition: int, value: bytes) -> None:
        offset = self.offsets[partition]
        self.offsets[partition] = offset + 1
        self.engine.apply(partition, offset, value, origin=(partition, offset))
        self.unsettled += 1
        if self.unsettled >= CHUNK_RECORDS or self.engine.full:
            self.settle()
        watermark = self.engine.correlator.watermark
        if self.next_tick is not None and watermark >= self.next_tick:
            self.tick()
        if watermark > float("-inf"):
            self.next_tick = self.engine.correlator.spec.bucket_start(watermark) + self.settings.window_step_s

    def tick(self) -> None:
        for partition in range(self.partitions):
            self.engine.tick(partition)

    def settle(self) -> None:
        settlement = self.engine.settle()
        if settlement.failures:
            raise RuntimeError(f"entities failed to correlate: {settlement.failures}")
        self.events += [escalation.record() for escalation in settlement.escalations]
        self.engine.release()
        self.unsettled = 0


def spans_per_s(settings: Settings, scenario: Scenario, warm_up: list[Item], items: list[Item], spans: int,
                runs: int) -> list[float]:
    """The pipeline's rate on ``items`` (holding ``spans`` spans) once it holds the scenario's assets and findings
    and has played ``warm_up``, as the benchmark's workers have, one fresh pipeline per run: CPU time of this
    process, so that the shared machine's other work does not count."""
    rates = []
    for _ in range(runs):
        pipeline = Pipeline(settings)
        pipeline.load(scenario)
        pipeline.play(warm_up)
        started = time.process_time()
        pipeline.play(items)
        rates.append(spans / (time.process_time() - started))
    return rates
