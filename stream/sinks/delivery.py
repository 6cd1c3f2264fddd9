"""``hotpath deliver``: escalations to the SIEM topic and the incident webhooks, losing nothing.

For each record of ``topic_escalations`` (consumer group ``<app_id>-delivery``, auto-commit off):

1. the OCSF Detection Finding goes to ``topic_siem`` (keyed by escalation uid) and is acknowledged;
2. the event goes to every matching sink (see :mod:`stream.sinks.routing`) concurrently. 429, 5xx,
   timeouts and network errors are retried with exponential back-off and full jitter, never sooner
   than ``Retry-After``, up to ``delivery_retry_budget`` retries per event and sink; a permanent
   error or a spent budget puts a dead-letter record on ``topic_dlq`` (reason names the sink, the
   status and the answer, never the secret). A sink that refuses connections is down, not refusing
   the event: those retries spend no budget, so an outage is waited out (the events stay
   uncommitted, retried every ``delivery_backoff_max_s`` at most) and they are delivered when it is back;
3. only then is the record done. Offsets are committed per partition up to the first record not
   done, so deliveries may finish out of order while a crash re-delivers everything unfinished:
   at least once, and the receivers de-duplicate on the escalation uid.

Records with the same key (one finding) are delivered one after the other, so a resolve never
overtakes its trigger. Partitions are independent: one with too many records in flight is paused
while the others go on, and each sink has its own small request pool, so a slow sink delays only
its own deliveries. SIGTERM/SIGINT stops consuming, gives in-flight requests a short grace period
and abandons the rest uncommitted. Logs are JSON lines (stream.logs) without secrets; :class:`DeliveryMetrics`
counts deliveries, retries and dead letters per sink.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import functools
import logging
import os
import random
import signal
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream import kafka
from stream.deadletter import dead_letter, dead_letter_key
from stream.logs import configure_logging
from stream.models import DecodeError
from stream.settings import Settings, SinkSettings
from stream.sinks import opsgenie, pagerduty, webhook
from stream.sinks.escalation import Escalation, parse_escalation
from stream.sinks.http import Accepted, HttpRequest, Outcome, Permanent, Retry
from stream.sinks.routing import Secret, check_sinks, load_secret, sink_matches

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
UNREADABLE = "(unreadable event)"
# Connection refused or no route: nothing at the sink's address answers, whatever the event.
UNREACHABLE_ERRNOS = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH})
SIEM = "(siem)"
Key = tuple[str, int]


@dataclass
class DeliveryMetrics:
    """In-process counters, per sink name (never a URL or a secret)."""

    consumed: int = 0
    siem_published: int = 0
    delivered: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, Any]:
        return {
            "consumed": self.consumed,
            "siem_published": self.siem_published,
            "delivered": dict(self.delivered),
            "retries": dict(self.retries),
            "dead_lettered": dict(self.dead_lettered),
        }


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


@dataclass(frozen=True)
class SinkClient:
    """One configured sink, ready to send: its settings, secret, request builder and answer classifier."""

    settings: SinkSettings
    secret: Secret
    build: Callable[[Escalation, float], HttpRequest]
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
        def build(escalation: Escalation, now: float) -> HttpRequest:
            return webhook.build_request(escalation, sink, secret, now=now)

        return SinkClient(sink, secret, build, webhook.classify)
    module = pagerduty if sink.kind == "pagerduty" else opsgenie

    def build_incident(escalation: Escalation, now: float) -> HttpRequest:
        return module.build_request(escalation, sink, secret, trace_url_template=trace_url_template)

    return SinkClient(sink, secret, build_incident, module.classify)


@dataclass(frozen=True, slots=True)
class Unreachable(Retry):
    """The sink could not be connected to at all: retried without spending the event's budget."""


class KafkaDeliveryError(Exception):
    """The broker did not take a SIEM or dead-letter record: stop without committing."""


class _Abandoned(Exception):
    """A delivery stopped before it finished (shutdown); its record stays uncommitted."""


class DeliveryService:
    """Consumes escalations, publishes the SIEM feed, delivers to sinks, commits what is finished."""

    def __init__(self, settings: Settings, sinks: list[SinkClient], *, start_from: str = "earliest",
                 metrics: DeliveryMetrics | None = None, rng: Callable[[], float] = random.random):
        self._settings = settings
        self._sinks = sinks
        self._start_from = start_from
        self.metrics = metrics or DeliveryMetrics()
        self._rng = rng
        self.group_id = f"{settings.app_id}-delivery"
        self._progress: dict[Key, PartitionProgress] = {}
        self._tasks: defaultdict[Key, set[asyncio.Task]] = defaultdict(set)
        self._last_by_key: dict[bytes, asyncio.Task] = {}
        self._paused: set[Key] = set()
        self._fatal: BaseException | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; raises if the broker refused a record (nothing uncommitted is lost)."""
        import aiohttp

        from stream.sinks.ocsf import to_ocsf

        self._to_ocsf = to_ocsf
        self._loop = asyncio.get_running_loop()
        self._stop = stop
        self._limits = {sink.name: asyncio.Semaphore(MAX_REQUESTS_PER_SINK) for sink in self._sinks}
        self._consumer_thread = ThreadPoolExecutor(1, thread_name_prefix="hotpath-delivery-consumer")
        self._consumer = kafka.consumer(self._settings, self.group_id, enable_auto_commit=False,
                                        auto_offset_reset=self._start_from, session_timeout_ms=SESSION_TIMEOUT_MS)
        self._producer = kafka.producer(self._settings)
        self._closing = threading.Event()
        poller = threading.Thread(target=self._poll_producer, name="hotpath-delivery-producer", daemon=True)
        poller.start()
        timeout = aiohttp.ClientTimeout(total=self._settings.delivery_request_timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                self._session = session
                await self._on_consumer_thread(self._consumer.subscribe, [self._settings.topic_escalations],
                                               on_revoke=self._on_revoke, on_lost=self._on_lost)
                _log(logging.INFO, "delivering", topic=self._settings.topic_escalations, group=self.group_id,
                     sinks=[sink.name for sink in self._sinks])
                while not stop.is_set():
                    records = await self._on_consumer_thread(self._consumer.consume, CONSUME_BATCH, CONSUME_WAIT_S)
                    for record in records:
                        self._accept(record)
                    await self._flow_control()
                    await self._commit()
                await self._drain()
                await self._commit()
        finally:
            await self._on_consumer_thread(self._consumer.close)
            self._closing.set()
            poller.join()
            self._producer.flush(10)
            self._consumer_thread.shutdown()
            _log(logging.INFO, "stopped", **self.metrics.snapshot())
        if self._fatal is not None:
            raise self._fatal

    # --- per record ---------------------------------------------------------------------------

    def _accept(self, record) -> None:
        if record.error() is not None:
            _log(logging.WARNING, "consumer error", error=str(record.error()))
            return
        tp = (record.topic(), record.partition())
        progress = self._progress.setdefault(tp, PartitionProgress())
        progress.started(record.offset())
        self.metrics.consumed += 1
        key = record.key()
        previous = self._last_by_key.get(key) if key is not None else None
        task = self._loop.create_task(self._handle(record, previous))
        self._tasks[tp].add(task)
        if key is not None:
            self._last_by_key[key] = task
        task.add_done_callback(functools.partial(self._finished, tp, record.offset(), key, progress))

    def _finished(self, tp: Key, offset: int, key: bytes | None, progress: PartitionProgress, task: asyncio.Task) -> None:
        self._tasks[tp].discard(task)
        if key is not None and self._last_by_key.get(key) is task:
            del self._last_by_key[key]
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            progress.finished(offset)
        elif not isinstance(error, _Abandoned):
            _log(logging.ERROR, "delivery failed; stopping without committing", topic=tp[0], partition=tp[1],
                 offset=offset, error=f"{type(error).__name__}: {error}")
            self._fatal = self._fatal or error
            self._stop.set()

    async def _handle(self, record, previous: asyncio.Task | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])
            if previous.cancelled() or previous.exception() is not None:
                raise _Abandoned("an earlier event of the same finding was not delivered")
        try:
            escalation = parse_escalation(record.value(), self._settings.max_record_bytes)
        except DecodeError as exc:
            await self._dead_letter(record, f"cannot read escalation event: {exc.reason}", UNREADABLE)
            return
        await self._publish_siem(record, escalation)
        targets = [sink for sink in self._sinks if sink_matches(sink.settings, escalation)]
        try:
            async with asyncio.TaskGroup() as group:
                for sink in targets:
                    group.create_task(self._deliver(record, escalation, sink))
        except BaseExceptionGroup as failures:
            _, other = failures.split(_Abandoned)
            if other is None:
                raise _Abandoned("stopped during delivery") from None
            raise other.exceptions[0] from None

    async def _publish_siem(self, record, escalation: Escalation) -> None:
        try:
            value = orjson.dumps(self._to_ocsf(escalation))
        except ValueError as exc:
            await self._dead_letter(record, f"cannot build the OCSF finding: {exc}", SIEM)
            return
        await self._produce(self._settings.topic_siem, escalation.escalation_uid.encode(), value)
        self.metrics.siem_published += 1

    async def _deliver(self, record, escalation: Escalation, sink: SinkClient) -> None:
        settings = self._settings
        where = {"sink": sink.name, "dedup_key": escalation.dedup_key, "state": escalation.state,
                 "version": escalation.version}
        retry = spent = 0
        while True:
            request = sink.build(escalation, time.time())
            async with self._limits[sink.name]:
                outcome = await self._send(sink, request)
            if isinstance(outcome, Accepted):
                self.metrics.delivered[sink.name] += 1
                _log(logging.INFO, "delivered", **where, status=outcome.status, attempts=retry + 1)
                return
            if isinstance(outcome, Permanent) or spent >= settings.delivery_retry_budget:
                break
            delay = backoff_delay(retry, base_s=settings.delivery_backoff_base_s, max_s=settings.delivery_backoff_max_s,
                                  retry_after_s=outcome.after_s, rng=self._rng)
            retry += 1
            if not isinstance(outcome, Unreachable):
                spent += 1
            self.metrics.retries[sink.name] += 1
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
        except aiohttp.ClientError as exc:
            refused = isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.errno in UNREACHABLE_ERRNOS
            return (Unreachable if refused else Retry)(f"network error: {type(exc).__name__}: {exc}")

    async def _dead_letter(self, record, reason: str, counted_as: str) -> None:
        entry = dead_letter(reason, topic=record.topic(), partition=record.partition(), offset=record.offset(),
                            key=record.key(), value=record.value(), max_value_bytes=self._settings.dlq_max_value_bytes,
                            keep_raw=self._settings.dlq_keep_raw, stage="delivery")
        await self._produce(self._settings.topic_dlq, dead_letter_key(entry), orjson.dumps(entry))
        self.metrics.dead_lettered[counted_as] += 1
        _log(logging.ERROR, "dead-lettered", reason=reason, topic=record.topic(), partition=record.partition(),
             offset=record.offset())

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return False
        return True

    # --- Kafka plumbing ---------------------------------------------------------------------

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

    def _poll_producer(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.1)

    async def _on_consumer_thread(self, function, *args, **kwargs):
        """Every consumer call runs on one thread: confluent-kafka consumers are not for concurrent use."""
        return await self._loop.run_in_executor(self._consumer_thread, functools.partial(function, *args, **kwargs))

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
            _log(logging.WARNING, "commit failed; will retry", error=str(exc))
            return
        for tp, offset in ready:
            if tp in self._progress:
                self._progress[tp].committed = offset

    def _on_revoke(self, consumer, partitions) -> None:
        from confluent_kafka import KafkaException

        offsets = asyncio.run_coroutine_threadsafe(self._release(partitions), self._loop).result()
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                _log(logging.WARNING, "commit on revoke failed", error=str(exc))

    def _on_lost(self, consumer, partitions) -> None:
        asyncio.run_coroutine_threadsafe(self._release(partitions), self._loop).result()

    async def _release(self, partitions) -> list:
        """Stop work on partitions this worker no longer owns; return what finished and can be committed."""
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
            progress = self._progress.pop(tp, None)
            if progress is not None and (offset := progress.to_commit()) is not None:
                offsets.append(TopicPartition(*tp, offset))
        _log(logging.INFO, "partitions released", partitions=[f"{t}[{p}]" for t, p in keys], abandoned=len(tasks))
        return offsets

    async def _drain(self) -> None:
        pending = {task for tasks in self._tasks.values() for task in tasks}
        if not pending:
            return
        _log(logging.INFO, "stopping: waiting for in-flight deliveries", in_flight=len(pending))
        _, unfinished = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE_S)
        for task in unfinished:
            task.cancel()
        if unfinished:
            await asyncio.wait(unfinished)
            _log(logging.WARNING, "abandoned in-flight deliveries; they will be re-delivered", abandoned=len(unfinished))


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
                        help="where a delivery group without committed offsets begins (default: earliest, skip nothing)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.log_level)
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
    except Exception as exc:  # one line in the log, not a traceback: the cause is in the message
        _log(logging.ERROR, "delivery stopped", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0
