"""One lane of ``hotpath deliver``: a consumer group on the escalations topic doing one job per record.

The lane reads with auto-commit off and starts a task per record (records with the same key, one
finding, one after the other); records finish in any order, and the lane commits per partition up
to the first record not finished (:class:`PartitionProgress`), so a crash re-delivers everything
unfinished. A partition with too many records in flight is paused in this lane only. On a
rebalance the lane abandons the work of the partitions it loses and commits what finished. A group
without committed offsets starts where ``inherited`` says (the SIEM lane's group, for a new sink's
lane), else at ``start_from``, and commits that start at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stream.kafka import clients as kafka
from stream.settings import Settings

log = logging.getLogger("hotpath.delivery")

MAX_IN_FLIGHT_PER_PARTITION = 256
SHUTDOWN_GRACE_S = 5.0
CONSUME_BATCH = 100
CONSUME_WAIT_S = 0.2
# How often each lane asks the brokers for the end of its partitions (the backlog metrics).
BACKLOG_INTERVAL_S = 5.0
BACKLOG_QUERY_TIMEOUT_S = 2.0
# Where a sink's new group starts is asked of the brokers once per assignment.
START_QUERY_TIMEOUT_S = 30.0
# A lane whose loop has not turned for this long is wedged (its consume call waits 0.2 s; a commit
# or a rebalance callback can take a broker's request timeout, 60 s).
LIVENESS_STALL_S = 180.0
Key = tuple[str, int]


def lane_group(app_id: str, sink_name: str | None = None) -> str:
    """The consumer group of the SIEM lane (no sink), or of one sink's lane."""
    return f"{app_id}-delivery" if sink_name is None else f"{app_id}-delivery-{sink_name}"


class Abandoned(Exception):
    """A delivery stopped before it finished (shutdown); its record stays uncommitted."""


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
                                        auto_offset_reset=self._start_from,
                                        session_timeout_ms=round(kafka.GROUP_SESSION_TIMEOUT_S * 1000))
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
            log_event(logging.WARNING, "consumer error", lane=self.name, error=str(record.error()))
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

    def _finished(self, tp: Key, offset: int, key: bytes | None, progress: PartitionProgress,
                  task: asyncio.Task) -> None:
        self._tasks.get(tp, set()).discard(task)
        if key is not None and self._last_by_key.get(key) is task:
            del self._last_by_key[key]
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            progress.finished(offset)
        elif not isinstance(error, Abandoned):
            log_event(logging.ERROR, "delivery failed; stopping without committing", lane=self.name, topic=tp[0],
                 partition=tp[1], offset=offset, error=f"{type(error).__name__}: {error}")
            self._fatal = self._fatal or error
            self._stop.set()

    async def _handle(self, record, previous: asyncio.Task | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])
            if previous.cancelled() or previous.exception() is not None:
                raise Abandoned("an earlier event of the same finding was not delivered")
        await self._work(record)

    # --- Kafka plumbing ---------------------------------------------------------------------

    async def _on_consumer_thread(self, function, *args, **kwargs):
        """Every consumer call runs on one thread: confluent-kafka consumers are not for concurrent use."""
        return await self._loop.run_in_executor(self._thread, functools.partial(function, *args, **kwargs))

    async def _flow_control(self) -> None:
        """Pause partitions with too much in flight, resume them at half, so others keep going."""
        from confluent_kafka import TopicPartition

        full = [tp for tp, p in self._progress.items()
                if p.in_flight >= MAX_IN_FLIGHT_PER_PARTITION and tp not in self._paused]
        eased = [tp for tp in self._paused if self._progress[tp].in_flight < MAX_IN_FLIGHT_PER_PARTITION // 2]
        if full:
            await self._on_consumer_thread(self._consumer.pause, [TopicPartition(*tp) for tp in full])
            self._paused.update(full)
        if eased:
            await self._on_consumer_thread(self._consumer.resume, [TopicPartition(*tp) for tp in eased])
            self._paused.difference_update(eased)

    async def _commit(self) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        ready = [(tp, offset) for tp, progress in self._progress.items()
                 if (offset := progress.to_commit()) is not None]
        if not ready:
            return
        try:
            await self._on_consumer_thread(self._consumer.commit, asynchronous=False,
                                           offsets=[TopicPartition(*tp, offset) for tp, offset in ready])
        except KafkaException as exc:
            log_event(logging.WARNING, "commit failed; will retry", lane=self.name, error=str(exc))
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
        log_event(logging.INFO, "starting a new group", lane=self.name, group=self.group_id,
             starts={f"{tp.topic}[{tp.partition}]": tp.offset for tp in starts})

    def _on_revoke(self, consumer, partitions) -> None:
        from confluent_kafka import KafkaException

        offsets = asyncio.run_coroutine_threadsafe(self._release(partitions), self._loop).result()
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                log_event(logging.WARNING, "commit on revoke failed", lane=self.name, error=str(exc))

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
        log_event(logging.INFO, "partitions released", lane=self.name, partitions=[f"{t}[{p}]" for t, p in keys],
             abandoned=len(tasks))
        return offsets

    async def _drain(self) -> None:
        pending = {task for tasks in self._tasks.values() for task in tasks}
        if not pending:
            return
        log_event(logging.INFO, "stopping: waiting for in-flight deliveries", lane=self.name, in_flight=len(pending))
        _, unfinished = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE_S)
        for task in unfinished:
            task.cancel()
        if unfinished:
            await asyncio.wait(unfinished)
            log_event(logging.WARNING, "abandoned in-flight deliveries; they will be re-delivered", lane=self.name,
                 abandoned=len(unfinished))

    def in_flight(self, tp: Key) -> int:
        """Records of ``tp`` this lane has read and not finished."""
        progress = self._progress.get(tp)
        return progress.in_flight if progress is not None else 0


def log_event(level: int, message: str, **fields: Any) -> None:
    """A structured log line of the deliver service (stream.logs renders ``fields`` as JSON keys)."""
    log.log(level, message, extra=fields)
