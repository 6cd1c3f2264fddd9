"""``hotpath deliver``: escalations to the SIEM topic and the incident webhooks, losing nothing.

The work is split in *lanes*, each one consumer group on ``topic_escalations`` (auto-commit off)
with its own committed offsets:

- the SIEM lane (group ``<app_id>-delivery``) publishes each event's OCSF Detection Finding to
  ``topic_siem`` (keyed by escalation uid), once the broker acknowledged it, and dead-letters
  records that cannot be read;
- one lane per sink (group ``<app_id>-delivery-<sink name>``) sends the events that match the sink
  (see :mod:`stream.deliver.routing`). 429, 5xx, timeouts and network errors, refused connections
  included, are retried with exponential back-off and full jitter, never sooner than
  ``Retry-After``, up to ``delivery_retry_budget`` retries per event and sink; a permanent error or
  a spent budget puts a dead-letter record on ``topic_dlq`` (the reason names the sink, the status
  and the answer, never the secret). A sink's group without committed offsets (a new sink, or the
  first start after an upgrade from the single delivery group) starts where the SIEM lane's group
  stood when the service started, and commits that start at once, so the escalations the topic
  retains are not paged again and a lane stopped before its first delivery resumes there.

A sink that is down therefore lags alone: the other sinks and the SIEM feed go on, and the sink's
lane resumes where it stopped. In each lane records finish in any order; offsets are committed per
partition up to the first record not finished, so a crash re-delivers everything unfinished: at
least once, and the receivers de-duplicate on the escalation uid. Records with the same key (one
finding) are handled one after the other in a lane, so a resolve never overtakes its trigger.
A partition with too many records in flight in a lane is paused in that lane only, and each sink
has its own small request pool. SIGTERM/SIGINT stops consuming, gives in-flight requests a short
grace period and abandons the rest uncommitted.

Start-up waits at most ``kafka_connect_timeout_s`` for the brokers, then stops with one line. A web
server (:mod:`stream.deliver.ops`, ``deliver_web_port``) answers ``/health/live``, ``/health/ready``
and ``/metrics``; logs are JSON lines (stream.logs) without secrets, the Kafka clients' folded.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream.deliver import opsgenie, pagerduty, webhook
from stream.deliver.escalation import Escalation, parse_escalation
from stream.deliver.http import Accepted, HttpRequest, Outcome, Permanent, Retry
from stream.deliver.ops import OpsServer, WebServerError
from stream.deliver.routing import Secret, check_sinks, load_secret, sink_matches
from stream.kafka import clients as kafka
from stream.kafka.connect import KafkaUnavailable, check_brokers, fold_client_logs
from stream.kafka.deadletter import dead_letter, dead_letter_key
from stream.logs import configure_logging
from stream.metrics import process_registry
from stream.models import DecodeError
from stream.settings import Settings, SinkSettings, web_bind_host

log = logging.getLogger("hotpath.delivery")

MAX_IN_FLIGHT_PER_PARTITION = 256
MAX_REQUESTS_PER_SINK = 8
RESPONSE_READ_BYTES = 64 * 1024
SHUTDOWN_GRACE_S = 5.0
CONSUME_BATCH = 100
CONSUME_WAIT_S = 0.2
# A crashed worker's partitions are handed on (and their unfinished records re-delivered) when its
# group session expires: 10 s instead of librdkafka's 45 s.
SESSION_TIMEOUT_MS = 10_000
# How often each lane asks the brokers for the end of its partitions (the backlog metrics).
BACKLOG_INTERVAL_S = 5.0
BACKLOG_QUERY_TIMEOUT_S = 2.0
# Where a sink's new group starts is asked of the brokers once per assignment.
START_QUERY_TIMEOUT_S = 30.0
# A lane whose loop has not turned for this long is wedged (its consume call waits 0.2 s; a commit
# or a rebalance callback can take a broker's request timeout, 60 s).
LIVENESS_STALL_S = 180.0
REQUEST_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
UNREADABLE = "(unreadable event)"
SIEM = "(siem)"
Key = tuple[str, int]


class DeliveryMetrics:
    """The deliver metrics of the catalog (README, "Operating"), in a registry of their own that also
    carries the process and Python metrics (see stream.metrics.process_registry)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry = registry if registry is not None else process_registry()
        self.records = Counter("hotpath_deliver_records_total", "Escalation records consumed", registry=registry)
        self.delivered = Counter("hotpath_deliver_delivered_total", "Escalations a sink accepted", ["sink"],
                                 registry=registry)
        self.retries = Counter("hotpath_deliver_retries_total", "Webhook requests retried", ["sink"], registry=registry)
        self.dead_lettered = Counter("hotpath_deliver_dead_lettered_total", "Deliveries given up and dead-lettered",
                                     ["sink"], registry=registry)
        self.siem_published = Counter("hotpath_deliver_siem_published_total",
                                      "OCSF Detection Findings published to the SIEM topic", registry=registry)
        self.request_seconds = Histogram("hotpath_deliver_request_seconds", "One webhook request, connect to answer",
                                         ["sink"], buckets=REQUEST_BUCKETS_S, registry=registry)
        self.pending = Gauge("hotpath_deliver_pending", "Escalations waiting for that sink (read or not)", ["sink"],
                             registry=registry)
        self.consumer_lag = Gauge("hotpath_deliver_consumer_lag_records",
                                  "Records of the partition its slowest lane has not finished", ["topic", "partition"],
                                  registry=registry)
        self.ready = Gauge("hotpath_deliver_ready", "1 when the service is ready, 0 otherwise", registry=registry)

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value, 0 when it has none yet (``value("hotpath_deliver_retries_total", sink="x")``)."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def totals(self) -> dict[str, float]:
        """Each deliver counter summed over its labels, for the line logged at shutdown."""
        return {family.name: sum(sample.value for sample in family.samples if sample.name.endswith("_total"))
                for family in self.registry.collect()
                if family.type == "counter" and family.name.startswith("hotpath_deliver_")}


def backoff_delay(retry: int, *, base_s: float, max_s: float, retry_after_s: float | None = None,
                  rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry number ``retry + 1``: full jitter over ``[0, min(max, base * 2**retry)]``.

    Never sooner than the server's ``Retry-After``, never longer than ``max_s`` (a server asking for
    more costs one more attempt of the budget instead of stalling the partition).
    """
    delay = rng() * min(max_s, base_s * 2.0 ** min(retry, 60))
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return min(delay, max_s)


class PartitionProgress:
    """The offsets of one partition in flight, and how far it is safe to commit.

    Records finish in any order; the safe offset only moves past a record once every earlier one
    has finished too.
    """

    __slots__ = ("_pending", "_finished", "safe_offset", "committed")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._finished: set[int] = set()
        self.safe_offset: int | None = None
        self.committed: int | None = None

    def started(self, offset: int) -> None:
        self._pending.append(offset)

    def finished(self, offset: int) -> None:
        self._finished.add(offset)
        while self._pending and self._pending[0] in self._finished:
            head = self._pending.popleft()
            self._finished.discard(head)
            self.safe_offset = head + 1

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def to_commit(self) -> int | None:
        """The offset to commit now, or None when there is nothing new."""
        return self.safe_offset if self.safe_offset is not None and self.safe_offset != self.committed else None


def slowest_backlog(backlogs: Iterable[Mapping[Key, int]]) -> dict[Key, int]:
    """Per partition, the largest backlog of any lane: what is left to do before it is fully delivered."""
    slowest: dict[Key, int] = {}
    for backlog in backlogs:
        for tp, records in backlog.items():
            slowest[tp] = max(records, slowest.get(tp, 0))
    return slowest


def committed_offsets(settings: Settings, group: str) -> dict[Key, int]:
    """The offsets ``group`` has committed on the escalations topic (none for a group never seen)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    admin = kafka.admin(settings)  # kept until the answer: a dropped client never completes it
    answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(
        timeout=START_QUERY_TIMEOUT_S)
    return {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions
            if tp.topic == settings.topic_escalations and tp.offset >= 0}


def lane_group(app_id: str, sink_name: str | None = None) -> str:
    """The consumer group of the SIEM lane (no sink), or of one sink's lane."""
    return f"{app_id}-delivery" if sink_name is None else f"{app_id}-delivery-{sink_name}"


@dataclass(frozen=True)
class SinkClient:
    """One configured sink, ready to send: its settings, secret, request builder and answer classifier."""

    settings: SinkSettings
    secret: Secret
    build: Callable[[Escalation, float], list[HttpRequest]]  # the requests of one event, sent in order
    classify: Callable[[int, Mapping[str, str], bytes, float], Outcome]

    @property
    def name(self) -> str:
        return self.settings.name


def sink_clients(settings: Settings, environ: Mapping[str, str] = os.environ) -> list[SinkClient]:
    """The configured sinks with their secrets loaded; ConfigError for a bad or incomplete one."""
    check_sinks(settings.sinks)
    return [_sink_client(sink, load_secret(sink, environ), settings.trace_url_template) for sink in settings.sinks]


def _sink_client(sink: SinkSettings, secret: Secret, trace_url_template: str) -> SinkClient:
    if sink.kind == "webhook":
        def build(escalation: Escalation, now: float) -> list[HttpRequest]:
            return [webhook.build_request(escalation, sink, secret, now=now)]

        return SinkClient(sink, secret, build, webhook.classify)
    if sink.kind == "opsgenie":  # a priority change is a second request: Opsgenie keeps an alert's first priority
        def build_alert(escalation: Escalation, now: float) -> list[HttpRequest]:
            return opsgenie.build_requests(escalation, sink, secret, trace_url_template=trace_url_template)

        return SinkClient(sink, secret, build_alert, opsgenie.classify)

    def build_incident(escalation: Escalation, now: float) -> list[HttpRequest]:
        return [pagerduty.build_request(escalation, sink, secret, trace_url_template=trace_url_template)]

    return SinkClient(sink, secret, build_incident, pagerduty.classify)


class KafkaDeliveryError(Exception):
    """The broker did not take a SIEM or dead-letter record: stop without committing."""


class _Abandoned(Exception):
    """A delivery stopped before it finished (shutdown); its record stays uncommitted."""


class Lane:
    """One consumer group on the escalations topic doing one job per record (``work``), committing its own way.

    Where the group has no committed offset yet, the lane starts at the offset ``inherited`` gives
    the partition, else at ``start_from``. ``on_backlog`` is called (on the event loop) whenever the
    lane has measured its backlog.
    """

    def __init__(self, name: str, group_id: str, work: Callable[[Any], Awaitable[None]], settings: Settings, *,
                 start_from: str, on_backlog: Callable[[Lane], None], inherited: Mapping[Key, int] | None = None):
        self.name = name
        self.group_id = group_id
        self._inherited = inherited
        self._work = work
        self._settings = settings
        self._start_from = start_from
        self._on_backlog = on_backlog
        self._progress: dict[Key, PartitionProgress] = {}
        self._tasks: dict[Key, set[asyncio.Task]] = {}
        self._last_by_key: dict[bytes, asyncio.Task] = {}
        self._paused: set[Key] = set()
        self._fatal: BaseException | None = None
        self._measured_at = float("-inf")
        self.backlog: dict[Key, int] = {}
        self.assigned = False
        self.kafka_error: str | None = None
        self.last_turn: float | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set (and set it on a fatal error, which is then raised)."""
        self._loop = asyncio.get_running_loop()
        self._stop = stop
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"hotpath-delivery-{self.name}")
        self._consumer = kafka.consumer(self._settings, self.group_id, enable_auto_commit=False,
                                        auto_offset_reset=self._start_from, session_timeout_ms=SESSION_TIMEOUT_MS)
        try:
            await self._on_consumer_thread(self._consumer.subscribe, [self._settings.topic_escalations],
                                           on_assign=self._on_assign, on_revoke=self._on_revoke,
                                           on_lost=self._on_lost)
            while not stop.is_set():
                self.last_turn = time.monotonic()
                records = await self._on_consumer_thread(self._consumer.consume, CONSUME_BATCH, CONSUME_WAIT_S)
                for record in records:
                    self._accept(record)
                await self._flow_control()
                await self._commit()
                await self._measure_backlog()
            await self._drain()
            await self._commit()
        finally:
            await self._on_consumer_thread(self._consumer.close)
            self._thread.shutdown()
        if self._fatal is not None:
            raise self._fatal

    def stalled(self, now: float) -> bool:
        return self.last_turn is not None and now - self.last_turn > LIVENESS_STALL_S

    # --- per record ---------------------------------------------------------------------------

    def _accept(self, record) -> None:
        if record.error() is not None:
            _log(logging.WARNING, "consumer error", lane=self.name, error=str(record.error()))
            return
        tp = (record.topic(), record.partition())
        progress = self._progress.setdefault(tp, PartitionProgress())
        progress.started(record.offset())
        key = record.key()
        previous = self._last_by_key.get(key) if key is not None else None
        task = self._loop.create_task(self._handle(record, previous))
        self._tasks.setdefault(tp, set()).add(task)
        if key is not None:
            self._last_by_key[key] = task
        task.add_done_callback(functools.partial(self._finished, tp, record.offset(), key, progress))

    def _finished(self, tp: Key, offset: int, key: bytes | None, progress: PartitionProgress, task: asyncio.Task) -> None:
        self._tasks.get(tp, set()).discard(task)
        if key is not None and self._last_by_key.get(key) is task:
            del self._last_by_key[key]
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            progress.finished(offset)
        elif not isinstance(error, _Abandoned):
            _log(logging.ERROR, "delivery failed; stopping without committing", lane=self.name, topic=tp[0],
                 partition=tp[1], offset=offset, error=f"{type(error).__name__}: {error}")
            self._fatal = self._fatal or error
            self._stop.set()

    async def _handle(self, record, previous: asyncio.Task | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])
            if previous.cancelled() or previous.exception() is not None:
                raise _Abandoned("an earlier event of the same finding was not delivered")
        await self._work(record)

    # --- Kafka plumbing ---------------------------------------------------------------------

    async def _on_consumer_thread(self, function, *args, **kwargs):
        """Every consumer call runs on one thread: confluent-kafka consumers are not for concurrent use."""
        return await self._loop.run_in_executor(self._thread, functools.partial(function, *args, **kwargs))

    async def _flow_control(self) -> None:
        """Pause partitions with too much in flight, resume them at half, so others keep going."""
        from confluent_kafka import TopicPartition

        full = [tp for tp, p in self._progress.items() if p.in_flight >= MAX_IN_FLIGHT_PER_PARTITION and tp not in self._paused]
        eased = [tp for tp in self._paused if self._progress[tp].in_flight < MAX_IN_FLIGHT_PER_PARTITION // 2]
        if full:
            await self._on_consumer_thread(self._consumer.pause, [TopicPartition(*tp) for tp in full])
            self._paused.update(full)
        if eased:
            await self._on_consumer_thread(self._consumer.resume, [TopicPartition(*tp) for tp in eased])
            self._paused.difference_update(eased)

    async def _commit(self) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        ready = [(tp, offset) for tp, progress in self._progress.items() if (offset := progress.to_commit()) is not None]
        if not ready:
            return
        try:
            await self._on_consumer_thread(self._consumer.commit, asynchronous=False,
                                           offsets=[TopicPartition(*tp, offset) for tp, offset in ready])
        except KafkaException as exc:
            _log(logging.WARNING, "commit failed; will retry", lane=self.name, error=str(exc))
            return
        for tp, offset in ready:
            if tp in self._progress:
                self._progress[tp].committed = offset

    async def _measure_backlog(self) -> None:
        """Every few seconds: per assigned partition, records not finished (unread, or read and in flight)."""
        from confluent_kafka import KafkaException

        if time.monotonic() - self._measured_at < BACKLOG_INTERVAL_S:
            return
        self._measured_at = time.monotonic()
        try:
            unread = await self._on_consumer_thread(self._unread)
        except KafkaException as exc:
            self.kafka_error = exc.args[0].str()
            return
        self.kafka_error = None
        self.backlog = {tp: records + self.in_flight(tp) for tp, records in unread.items()}
        self._on_backlog(self)

    def _unread(self) -> dict[Key, int]:
        """Records past the position of each assigned partition (public consumer API, on the consumer thread)."""
        unread = {}
        for tp in self._consumer.position(self._consumer.assignment()):
            if tp.offset >= 0:
                _, end = self._consumer.get_watermark_offsets(tp, timeout=BACKLOG_QUERY_TIMEOUT_S)
                unread[(tp.topic, tp.partition)] = max(0, end - tp.offset)
        return unread

    def _on_assign(self, consumer, partitions) -> None:
        if self._inherited is not None:
            self._commit_starts(consumer, partitions)
        self.assigned = True

    def _commit_starts(self, consumer, partitions) -> None:
        """Commit where each partition this group has never committed starts, before reading it.

        The start is the inherited offset, or ``start_from``'s end of the partition. Committing it at
        once means a lane stopped before its first commit resumes there, not at a later inherited
        offset. A broker error here is raised from the consumer's poll: better stop than start at
        the wrong end and page every escalation the topic retains again.
        """
        from confluent_kafka import TopicPartition

        unstarted = [tp for tp in consumer.committed(partitions, timeout=START_QUERY_TIMEOUT_S) if tp.offset < 0]
        if not unstarted:
            return
        starts = []
        for tp in unstarted:
            offset = self._inherited.get((tp.topic, tp.partition))
            if offset is None:
                low, high = consumer.get_watermark_offsets(tp, timeout=START_QUERY_TIMEOUT_S)
                offset = low if self._start_from == "earliest" else high
            starts.append(TopicPartition(tp.topic, tp.partition, offset))
        consumer.commit(offsets=starts, asynchronous=False)
        _log(logging.INFO, "starting a new group", lane=self.name, group=self.group_id,
             starts={f"{tp.topic}[{tp.partition}]": tp.offset for tp in starts})

    def _on_revoke(self, consumer, partitions) -> None:
        from confluent_kafka import KafkaException

        offsets = asyncio.run_coroutine_threadsafe(self._release(partitions), self._loop).result()
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                _log(logging.WARNING, "commit on revoke failed", lane=self.name, error=str(exc))

    def _on_lost(self, consumer, partitions) -> None:
        asyncio.run_coroutine_threadsafe(self._release(partitions), self._loop).result()

    async def _release(self, partitions) -> list:
        """Stop work on partitions this lane no longer owns; return what finished and can be committed."""
        from confluent_kafka import TopicPartition

        keys = [(p.topic, p.partition) for p in partitions]
        tasks = [task for tp in keys for task in self._tasks.pop(tp, ())]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        offsets = []
        for tp in keys:
            self._paused.discard(tp)
            self.backlog.pop(tp, None)
            progress = self._progress.pop(tp, None)
            if progress is not None and (offset := progress.to_commit()) is not None:
                offsets.append(TopicPartition(*tp, offset))
        self._on_backlog(self)
        _log(logging.INFO, "partitions released", lane=self.name, partitions=[f"{t}[{p}]" for t, p in keys],
             abandoned=len(tasks))
        return offsets

    async def _drain(self) -> None:
        pending = {task for tasks in self._tasks.values() for task in tasks}
        if not pending:
            return
        _log(logging.INFO, "stopping: waiting for in-flight deliveries", lane=self.name, in_flight=len(pending))
        _, unfinished = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE_S)
        for task in unfinished:
            task.cancel()
        if unfinished:
            await asyncio.wait(unfinished)
            _log(logging.WARNING, "abandoned in-flight deliveries; they will be re-delivered", lane=self.name,
                 abandoned=len(unfinished))

    def in_flight(self, tp: Key) -> int:
        """Records of ``tp`` this lane has read and not finished."""
        progress = self._progress.get(tp)
        return progress.in_flight if progress is not None else 0


class DeliveryService:
    """Runs the SIEM lane and one lane per sink on a shared producer, HTTP session and web server."""

    def __init__(self, settings: Settings, sinks: list[SinkClient], *, start_from: str = "earliest",
                 metrics: DeliveryMetrics | None = None, rng: Callable[[], float] = random.random):
        self._settings = settings
        self._sinks = sinks
        self.metrics = metrics or DeliveryMetrics()
        self._rng = rng
        self._start_from = start_from
        self.lanes: list[Lane] = []
        for sink in sinks:  # every sink's series exist from the start, at 0
            for counter in (self.metrics.delivered, self.metrics.retries, self.metrics.dead_lettered):
                counter.labels(sink.name)
        self.metrics.ready.set_function(lambda: float(self.readiness()[0]))
        self._lag_series: set[Key] = set()
        self._connected = False
        self._stop: asyncio.Event | None = None
        self.web_port: int | None = None

    def lane(self, name: str) -> Lane:
        return next(lane for lane in self.lanes if lane.name == name)

    def readiness(self) -> tuple[bool, str]:
        """Ready when connected and every lane's group has assigned it partitions; else why not."""
        if self._stop is None or self._stop.is_set():
            return False, "not running" if self._stop is None else "stopping"
        if not self._connected:
            return False, f"connecting to Kafka at {self._settings.bootstrap_servers}"
        for lane in self.lanes:
            if lane.kafka_error is not None:
                return False, f"lane {lane.name}: Kafka: {lane.kafka_error}"
            if not lane.assigned:
                return False, f"lane {lane.name}: waiting for group {lane.group_id} to assign partitions"
        return True, "ready"

    def liveness(self) -> tuple[bool, str]:
        """Live unless a lane's loop stopped turning (this answer itself shows the event loop turns)."""
        now = time.monotonic()
        stalled = [lane.name for lane in self.lanes if lane.stalled(now)]
        return (False, f"stalled lanes: {', '.join(stalled)}") if stalled else (True, "live")

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; raises if the broker refused a record (nothing uncommitted is lost)."""
        from stream.deliver.ocsf import to_ocsf

        self._to_ocsf = to_ocsf
        self._loop = asyncio.get_running_loop()
        self._stop = stop
        ops = OpsServer(web_bind_host(self._settings), self._settings.deliver_web_port, live=self.liveness,
                        ready=self.readiness, registry=self.metrics.registry)
        await ops.start()
        self.web_port = ops.port
        try:
            await self._loop.run_in_executor(None, check_brokers, self._settings, [self._settings.topic_escalations])
            delivered_up_to = await self._loop.run_in_executor(None, committed_offsets, self._settings,
                                                               lane_group(self._settings.app_id))
            self._connected = True
            self.lanes = self._lanes(delivered_up_to)
            await self._deliver_until(stop)
        finally:
            await ops.stop()

    def _lanes(self, delivered_up_to: Mapping[Key, int]) -> list[Lane]:
        """The SIEM lane, and one lane per sink, whose new groups start where the SIEM lane's group stood."""
        settings = self._settings
        lane = functools.partial(Lane, settings=settings, start_from=self._start_from, on_backlog=self._report_backlog)
        return [lane(SIEM, lane_group(settings.app_id), self._feed_siem)] + [
            lane(sink.name, lane_group(settings.app_id, sink.name), functools.partial(self._feed_sink, sink),
                 inherited=delivered_up_to) for sink in self._sinks]

    async def _deliver_until(self, stop: asyncio.Event) -> None:
        import aiohttp

        self._limits = {sink.name: asyncio.Semaphore(MAX_REQUESTS_PER_SINK) for sink in self._sinks}
        self._producer = kafka.producer(self._settings)
        closing = threading.Event()
        poller = threading.Thread(target=self._poll_producer, args=(closing,), name="hotpath-delivery-producer",
                                  daemon=True)
        poller.start()
        timeout = aiohttp.ClientTimeout(total=self._settings.delivery_request_timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                self._session = session
                _log(logging.INFO, "delivering", topic=self._settings.topic_escalations,
                     groups=[lane.group_id for lane in self.lanes])
                outcomes = await asyncio.gather(*(self._run_lane(lane, stop) for lane in self.lanes),
                                                return_exceptions=True)
        finally:
            closing.set()
            poller.join()
            self._producer.flush(10)
            _log(logging.INFO, "stopped", **self.metrics.totals())
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            raise failures[0]

    @staticmethod
    async def _run_lane(lane: Lane, stop: asyncio.Event) -> None:
        try:
            await lane.run(stop)
        finally:
            stop.set()  # one lane failing stops them all: the service restarts whole

    # --- the lanes' work ----------------------------------------------------------------------

    async def _feed_siem(self, record) -> None:
        """Count the record and publish its OCSF finding, or dead-letter it unreadable."""
        self.metrics.records.inc()
        try:
            escalation = parse_escalation(record.value(), self._settings.max_record_bytes)
        except DecodeError as exc:
            await self._dead_letter(record, f"cannot read escalation event: {exc.reason}", UNREADABLE)
            return
        try:
            value = orjson.dumps(self._to_ocsf(escalation))
        except ValueError as exc:
            await self._dead_letter(record, f"cannot build the OCSF finding: {exc}", SIEM)
            return
        await self._produce(self._settings.topic_siem, escalation.escalation_uid.encode(), value)
        self.metrics.siem_published.inc()

    async def _feed_sink(self, sink: SinkClient, record) -> None:
        """Deliver the event if it goes to ``sink``; unreadable ones are the SIEM lane's to dead-letter."""
        try:
            escalation = parse_escalation(record.value(), self._settings.max_record_bytes)
        except DecodeError:
            return
        if sink_matches(sink.settings, escalation):
            await self._deliver(record, escalation, sink)

    async def _deliver(self, record, escalation: Escalation, sink: SinkClient) -> None:
        settings = self._settings
        where = {"sink": sink.name, "dedup_key": escalation.dedup_key, "state": escalation.state,
                 "version": escalation.version}
        retry = step = 0
        while True:
            steps = sink.build(escalation, time.time())  # built again per attempt: signatures carry the time
            async with self._limits[sink.name]:
                outcome = await self._send(sink, steps[step])
            if isinstance(outcome, Accepted) and step + 1 < len(steps):
                step += 1
                continue
            if isinstance(outcome, Accepted):
                self.metrics.delivered.labels(sink.name).inc()
                _log(logging.INFO, "delivered", **where, status=outcome.status, attempts=retry + 1)
                return
            if isinstance(outcome, Permanent) or retry >= settings.delivery_retry_budget:
                break
            delay = backoff_delay(retry, base_s=settings.delivery_backoff_base_s, max_s=settings.delivery_backoff_max_s,
                                  retry_after_s=outcome.after_s, rng=self._rng)
            retry += 1
            self.metrics.retries.labels(sink.name).inc()
            _log(logging.WARNING, "retrying", **where, reason=sink.secret.redact(outcome.reason),
                 retry=retry, delay_s=round(delay, 3))
            if await self._stopped_within(delay):
                _log(logging.INFO, "abandoned at shutdown; will be re-delivered", **where)
                raise _Abandoned("stopped during back-off")
        failure = "permanent failure" if isinstance(outcome, Permanent) else f"gave up after {retry + 1} attempts"
        reason = sink.secret.redact(f"sink {sink.name} ({sink.settings.kind}): {failure}: {outcome.reason}")
        await self._dead_letter(record, reason, sink.name)

    async def _send(self, sink: SinkClient, request: HttpRequest) -> Outcome:
        import aiohttp

        method, url, headers, body = request
        try:
            with self.metrics.request_seconds.labels(sink.name).time():
                async with self._session.request(method, url, headers=headers, data=body,
                                                 allow_redirects=False) as response:
                    answer = bytearray()
                    while len(answer) < RESPONSE_READ_BYTES:
                        chunk = await response.content.read(RESPONSE_READ_BYTES - len(answer))
                        if not chunk:
                            break
                        answer += chunk
                    return sink.classify(response.status, response.headers, bytes(answer), time.time())
        except TimeoutError:
            return Retry(f"no answer within {self._settings.delivery_request_timeout_s:g}s")
        except aiohttp.ClientError as exc:  # refused connections too: a sink that is down spends its budget
            return Retry(f"network error: {type(exc).__name__}: {exc}")

    async def _dead_letter(self, record, reason: str, counted_as: str) -> None:
        entry = dead_letter(reason, topic=record.topic(), partition=record.partition(), offset=record.offset(),
                            key=record.key(), value=record.value(), max_value_bytes=self._settings.dlq_max_value_bytes,
                            keep_raw=self._settings.dlq_keep_raw, stage="delivery")
        await self._produce(self._settings.topic_dlq, dead_letter_key(entry), orjson.dumps(entry))
        self.metrics.dead_lettered.labels(counted_as).inc()
        _log(logging.ERROR, "dead-lettered", reason=reason, topic=record.topic(), partition=record.partition(),
             offset=record.offset())

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _report_backlog(self, lane: Lane) -> None:
        """Publish a lane's pending count and, per partition, the backlog of the slowest lane."""
        self.metrics.pending.labels(lane.name).set(sum(lane.backlog.values()))
        slowest = slowest_backlog(lane.backlog for lane in self.lanes)
        for tp, records in slowest.items():
            self.metrics.consumer_lag.labels(tp[0], str(tp[1])).set(records)
        for tp in self._lag_series - slowest.keys():
            self.metrics.consumer_lag.remove(tp[0], str(tp[1]))
        self._lag_series = set(slowest)

    # --- Kafka producer ------------------------------------------------------------------------

    async def _produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Produce and wait for the broker's acknowledgement."""
        acknowledged = self._loop.create_future()

        def on_delivery(error, _message) -> None:
            self._loop.call_soon_threadsafe(_settle, acknowledged, topic, error)

        while True:
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                await asyncio.sleep(0.05)
        await acknowledged

    def _poll_producer(self, closing: threading.Event) -> None:
        while not closing.is_set():
            self._producer.poll(0.1)


def _settle(future: asyncio.Future, topic: str, error) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(KafkaDeliveryError(f"{topic}: {error}"))


def _log(level: int, message: str, **fields: Any) -> None:
    """A structured log line (stream.logs renders ``fields`` as JSON keys)."""
    log.log(level, message, extra=fields)


# --- the command ---------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start-from", choices=("earliest", "latest"), default="earliest",
                        help="where the delivery group without committed offsets begins (default: earliest, skip "
                             "nothing); a sink's group without them begins where the delivery group stood")


def run(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.log_level)
    fold_client_logs()
    sinks = sink_clients(settings)
    if not sinks:
        _log(logging.WARNING, "no sinks configured (HOTPATH_SINKS): publishing the SIEM feed only")
    return asyncio.run(_serve(DeliveryService(settings, sinks, start_from=args.start_from)))


async def _serve(service: DeliveryService) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await service.run(stop)
    except (KafkaUnavailable, WebServerError) as exc:  # the message says what to do
        _log(logging.ERROR, f"cannot start: {exc}")
        return 1
    except Exception as exc:  # one line in the log, not a traceback: the cause is in the message
        _log(logging.ERROR, "delivery stopped", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0
