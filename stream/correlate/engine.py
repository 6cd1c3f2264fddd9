"""The one engine: what happens to a chunk of input, for the worker, ``hotpath replay`` and the tests alike.

The worker's Faust agents and replay are thin loops over :class:`Engine`, so replay gives the worker's
answer by construction: records are routed by the stream they came from, entity events are applied
with deferred judging (a redelivered position is skipped), and a chunk is settled in the order that
keeps every escalation safe:

1. :meth:`Engine.settle` judges what the chunk touched, drops the held state of every entity that
   failed (it keeps the state it had) and hands back the escalations to publish and the records to
   park, with their origins;
2. the caller publishes both and waits for the broker;
3. :meth:`Engine.release` then writes the held states (and so their changelog).

Pure: no Faust, no Kafka, no asyncio. Reading published escalations back after an assignment is the
caller's (it needs Kafka); :meth:`Engine.reconcile` takes what it read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream.correlate.correlator import Correlator, PolicyTime
from stream.correlate.event import Escalation
from stream.correlate.recovery import HeldWrites
from stream.entities.context import Context
from stream.ingest.decode import Ingest
from stream.ingest.entity_events import event_position, read_entity_events
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.router import Event, Routed, Router
from stream.models import NormalizedRecord, TraceBatch
from stream.policy.rules import Policy
from stream.settings import Settings

SWEEP_EVERY_TICKS = 60
# A chunk of records is judged and written once; a chunk reaching more than MAX_HELD_STATES entities is
# settled in parts, so the decoded states held at once stay few whatever the chunk holds: each is kilobytes of
# objects allocated between the long-lived encoded states, and a heap grown for 2048 of them stayed grown.
CHUNK_RECORDS = 256
MAX_HELD_STATES = 512


@dataclass(slots=True)
class Parked:
    """(Part of) an input record for the dead-letter topic: why, where it came from, what it held."""

    reason: str
    origin: Any  # the caller's handle on the input record (a Kafka message for the worker)
    value: bytes | None


@dataclass(slots=True)
class Settlement:
    """What a settled chunk asks of the caller before :meth:`Engine.release`."""

    escalations: list[Escalation] = field(default_factory=list)
    parked: list[Parked] = field(default_factory=list)
    failures: list[tuple[str, int]] = field(default_factory=list)  # (reason, events parked) per failed entity


class Engine:
    """Context, router, ingest and correlator, with the chunk being applied and the per-partition cadence."""

    def __init__(self, settings: Settings, table: MutableMapping[str, Any], *,
                 clock: Callable[[], float] = time.time, policy: Policy | None = None,
                 policy_time: PolicyTime = "wall") -> None:
        self.settings = settings
        self.context = Context(max_path_depth=settings.max_path_depth)
        self.router = Router(self.context, settings.window_step_s)
        self.ingest = Ingest(self.router, DecodeLimits.from_settings(settings, clock=clock),
                             settings.traces_encoding)
        self.store = HeldWrites(table)  # an entity's state is written once its escalations are published
        self.correlator = Correlator(settings, self.context, self.store, clock=clock, policy=policy,
                                     policy_time=policy_time)
        self.ticks: dict[int, int] = {}  # partition -> ticks since it was assigned
        self.reconciled: set[int] = set()  # partitions checked against the escalations already published
        self._results: list[Escalation] = []
        self._parked: list[Parked] = []
        self._origins: dict[str, list[tuple[Any, dict[str, Any]]]] = {}  # entity -> its events of this chunk
        self._routes: dict[str, Callable[[Any], Routed]] = {
            "findings": self.router.finding, "alerts": self.router.alert, "assets": self.router.asset,
            "traces": lambda touch: self.router.traces(TraceBatch([touch])),
        }

    # -- ingest ---------------------------------------------------------------------------------

    def route(self, stream: str, record: NormalizedRecord) -> Routed:
        """A record already decoded from ``stream``, routed as the worker routes that stream's records."""
        return self._routes[stream](record)

    # -- correlate ------------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        """Enough entity states wait for :meth:`release`: settle now, before the chunk ends."""
        return len(self.store.held) >= MAX_HELD_STATES

    def apply(self, partition: int, offset: int, value: bytes | None, origin: Any) -> int:
        """Apply one ``hotpath.entity-events`` record (a tick or events); returns how many events it held.

        A record of another shape is parked whole with the reason: the stream goes on.
        """
        try:
            events = read_entity_events(value)
        except ValueError as exc:
            self._parked.append(Parked(f"not an entity-events record: {exc}", origin, value))
            return 0
        if events is None:
            self.tick(partition)
            return 0
        return self.apply_events(events, partition, offset, origin)

    def apply_events(self, events: Iterable[Event], partition: int, offset: int, origin: Any) -> int:
        """Apply the entity events of the record at ``offset``, judging deferred to :meth:`settle`."""
        count = 0
        for index, (entity, record) in enumerate(events):
            self._origins.setdefault(entity, []).append((origin, record))
            self.correlator.process(entity, record, partition=partition,
                                    position=event_position(offset, index), defer=True)
            count += 1
        return count

    def tick(self, partition: int) -> None:
        """Judge what is deferred, then re-score the partition's live entities; the first tick after an
        assignment restores the partition's live set, and every SWEEP_EVERY_TICKS-th sweeps and prunes."""
        correlator = self.correlator
        self._results += correlator.judge_deferred()
        count = self.ticks.get(partition)
        if count is None:  # its state is the one recovered from the changelog
            correlator.restore_live(partition)
            count = 0
        self.ticks[partition] = count + 1
        if count % SWEEP_EVERY_TICKS == SWEEP_EVERY_TICKS - 1:
            correlator.sweep(partition)
            horizon = correlator.watermark - self.settings.stale_windows * self.settings.window_size_s
            self.context.prune(horizon)
            self.router.prune(horizon)
        self._results += correlator.tick(partition)

    def set_policy(self, policy: Policy | None) -> None:
        """Judge by ``policy`` from now on (a new version from hotpath.policy, or None for none), and re-judge
        every live entity of every partition at once: a removed mute re-escalates, a new one suppresses,
        without waiting for input. The events come with the next :meth:`settle`, like a tick's.

        Entities that are not live (no active escalation, no traffic within the stale horizon) cannot
        escalate whatever the policy says, so they wait for their next event.
        """
        self.correlator.policy = policy
        self._results += self.correlator.judge_deferred()  # so that a live entity is judged once, as on a tick
        self._results += self.correlator.tick()

    def settle(self) -> Settlement:
        """Judge the entities the chunk touched and say what to publish and park; the states stay held.

        An entity that could not be applied or judged keeps the state it had before the chunk, drops
        its escalations, and its events are parked with the reason.
        """
        results = self._results + self.correlator.judge_deferred()
        failures, self.correlator.failures = self.correlator.failures, {}
        parked, origins = self._parked, self._origins
        self._results, self._parked, self._origins = [], [], {}
        settlement = Settlement([e for e in results if e.resource not in failures], parked)
        for entity, reason in failures.items():
            events = origins.get(entity, ())
            settlement.parked += [Parked(reason, origin, orjson.dumps([entity, record])) for origin, record in events]
            settlement.failures.append((reason, len(events)))
            self.store.discard(entity)
        return settlement

    def release(self) -> None:
        """The settled chunk's escalations and dead letters are published: write the held states."""
        self.store.release()

    # -- partitions -----------------------------------------------------------------------------

    def revoked(self, partitions: set[int]) -> None:
        """Another worker owns these partitions now."""
        self.correlator.forget_partitions(partitions)
        for partition in partitions:
            self.ticks.pop(partition, None)
            self.reconciled.discard(partition)

    def needs_reconcile(self, partition: int) -> bool:
        return partition not in self.reconciled

    def reconcile(self, partition: int, published: Iterable[dict[str, Any]], owns: Callable[[str], bool]) -> int:
        """Raise the partition's recovered states to the escalations ``published`` since its first event
        (see stream.correlate.recovery); returns how many findings were raised."""
        self.reconciled.add(partition)
        return self.correlator.reconcile(partition, published, owns=owns)
