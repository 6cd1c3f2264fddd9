"""``hotpath deliver``: escalations to the SIEM topic and the incident webhooks, losing nothing.

The work is split in *lanes* (:mod:`stream.deliver.lane`), each one consumer group on
``topic_escalations`` (auto-commit off) with its own committed offsets:

- the SIEM lane (group ``<app_id>-delivery``) publishes each event's OCSF Detection Finding to
  ``topic_siem`` (keyed by escalation uid), once the broker acknowledged it, and dead-letters
  records that cannot be read;
- one lane per sink (group ``<app_id>-delivery-<sink name>``) sends the events that go to the sink
  (a policy's ``routing``, the sink's owner, environment and priority: :mod:`stream.deliver.routing`)
  and counts the others by reason (``hotpath_deliver_skipped_total``). 429, 5xx, timeouts and
  network errors, refused connections included, are retried with exponential back-off and full
  jitter (:mod:`stream.deliver.backoff`), never sooner than ``Retry-After``, up to
  ``delivery_retry_budget`` retries per event and sink; a permanent error or a spent budget puts a
  dead-letter record on ``topic_dlq`` (the reason names the sink, the status and the answer, never
  the secret). A sink's group without committed offsets (a new sink, or the first start after an
  upgrade from the single delivery group) starts where the SIEM lane's group stood when the service
  started, and commits that start at once, so the escalations the topic retains are not paged again
  and a lane stopped before its first delivery resumes there.

A sink that is down therefore lags alone: the other sinks and the SIEM feed go on, and the sink's
lane resumes where it stopped. In each lane records finish in any order and a crash re-delivers
everything unfinished: at least once, and the receivers de-duplicate on the escalation uid. Records
with the same key (one finding) are handled one after the other in a lane, so a resolve never
overtakes its trigger. Each sink has its own small request pool. On stop the lanes give in-flight
requests a short grace period and abandon the rest uncommitted.

Start-up waits at most ``kafka_connect_timeout_s`` for the brokers. A web server
(:mod:`stream.deliver.ops`, ``deliver_web_port``) answers ``/health/live``, ``/health/ready`` and
``/metrics`` (:mod:`stream.deliver.metrics`); logs are JSON lines (stream.logs) without secrets.
The command itself is :mod:`stream.commands.deliver`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping

import orjson

from stream.deliver.backoff import backoff_delay
from stream.deliver.escalation import Escalation, parse_escalation
from stream.deliver.http import Accepted, HttpRequest, Outcome, Permanent, Retry
from stream.deliver.lane import Abandoned, Key, Lane, committed_offsets, lane_group, log_event, slowest_backlog
from stream.deliver.metrics import DeliveryMetrics
from stream.deliver.ops import OpsServer
from stream.deliver.routing import SKIP_REASONS, skip_reason
from stream.deliver.sink import SinkClient
from stream.kafka import clients as kafka
from stream.kafka.connect import check_brokers
from stream.kafka.deadletter import dead_letter, dead_letter_key
from stream.models import DecodeError
from stream.settings import Settings, web_bind_host

MAX_REQUESTS_PER_SINK = 8
RESPONSE_READ_BYTES = 64 * 1024
UNREADABLE = "(unreadable event)"
SIEM = "(siem)"


class KafkaDeliveryError(Exception):
    """The broker did not take a SIEM or dead-letter record: stop without committing."""


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
            for reason in SKIP_REASONS:
                self.metrics.skipped.labels(sink.name, reason)
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
                log_event(logging.INFO, "delivering", topic=self._settings.topic_escalations,
                     groups=[lane.group_id for lane in self.lanes])
                outcomes = await asyncio.gather(*(self._run_lane(lane, stop) for lane in self.lanes),
                                                return_exceptions=True)
        finally:
            closing.set()
            poller.join()
            self._producer.flush(10)
            log_event(logging.INFO, "stopped", **self.metrics.totals())
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
            value = orjson.dumps(self._to_ocsf(escalation, trace_url_template=self._settings.trace_url_template))
        except ValueError as exc:
            await self._dead_letter(record, f"cannot build the OCSF finding: {exc}", SIEM)
            return
        await self._produce(self._settings.topic_siem, escalation.escalation_uid.encode(), value)
        self.metrics.siem_published.inc()

    async def _feed_sink(self, sink: SinkClient, record) -> None:
        """Deliver the event if it goes to ``sink``, else count why not; unreadable ones are the SIEM lane's."""
        try:
            escalation = parse_escalation(record.value(), self._settings.max_record_bytes)
        except DecodeError:
            return
        reason = skip_reason(sink.settings, escalation)
        if reason is None:
            await self._deliver(record, escalation, sink)
        else:
            self.metrics.skipped.labels(sink.name, reason).inc()

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
                log_event(logging.INFO, "delivered", **where, status=outcome.status, attempts=retry + 1)
                return
            if isinstance(outcome, Permanent) or retry >= settings.delivery_retry_budget:
                break
            delay = backoff_delay(retry, base_s=settings.delivery_backoff_base_s, max_s=settings.delivery_backoff_max_s,
                                  retry_after_s=outcome.after_s, rng=self._rng)
            retry += 1
            self.metrics.retries.labels(sink.name).inc()
            log_event(logging.WARNING, "retrying", **where, reason=sink.secret.redact(outcome.reason),
                 retry=retry, delay_s=round(delay, 3))
            if await self._stopped_within(delay):
                log_event(logging.INFO, "abandoned at shutdown; will be re-delivered", **where)
                raise Abandoned("stopped during back-off")
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
        log_event(logging.ERROR, "dead-lettered", reason=reason, topic=record.topic(), partition=record.partition(),
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
