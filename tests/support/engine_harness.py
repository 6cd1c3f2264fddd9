"""The engine driven one routed record at a time, as the unit tests of the correlation core want it."""

from __future__ import annotations

from datetime import UTC, datetime

from stream.correlate.engine import Engine
from stream.correlate.state import EncodedStates
from stream.ingest.entity_events import event_position
from stream.ingest.router import Routed
from stream.models import Asset, Finding, Touch, TraceBatch
from stream.settings import load_settings

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC).timestamp()
PARTITION = 0

BUCKET = "arn:aws:s3:::acme-statements"
VAULT = "arn:aws:s3:::acme-kyc-archive"
SG = "arn:aws:ec2:eu-west-1:111122223333:security-group/sg-0ledger"
DB = "arn:aws:rds:eu-west-1:111122223333:db:ledger"


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def finding(uid, resource, severity="high", status="open", when=0.0):
    return Finding(uid=uid, source="prowler", check="s3_bucket_public_access", title=f"{uid} title",
                   severity=severity, status=status, resources=[resource], account="111122223333",
                   region="eu-west-1", observed_at=at(when))


def touch(entity, callers, when, spans=10, internet=0, trace="0af7651916cd43dd8448eb211c80319c"):
    return Touch(entity=entity, services=callers, spans=spans, errors=0, internet_spans=internet,
                 first_seen=T0 + when - 1, last_seen=T0 + when, trace_ids=[trace])


class Harness:
    """The worker's engine on one partition with the clock at T0 (or ``clock``), judging by ``policy``: each
    routed record is applied and settled (judged, its escalations collected in ``out``, its states written)
    before the next."""

    def __init__(self, *, clock=lambda: T0, policy=None, **overrides) -> None:
        self.settings = load_settings(**overrides)
        self.engine = Engine(self.settings, EncodedStates(), clock=clock, policy=policy)
        self.context, self.router = self.engine.context, self.engine.router
        self.correlator, self.store = self.engine.correlator, self.engine.store
        self.out: list[dict] = []
        self.offset = 0
        self.position = 0  # of the last event applied, for tests that redeliver it
        self.engine.tick(PARTITION)  # assigned, its (empty) state restored, before the first record

    def feed(self, routed: Routed) -> None:
        self.offset += 1
        if self.engine.apply_events(routed.events, PARTITION, self.offset, origin=self.offset):
            self.position = event_position(self.offset, len(routed.events) - 1)
        self.settle()

    def settle(self) -> None:
        settlement = self.engine.settle()
        self.out += [escalation.record() for escalation in settlement.escalations]
        self.engine.release()

    def asset(self, **fields) -> None:
        self.feed(self.engine.route("assets", Asset(**fields)))

    def traces(self, *touches, pods=None) -> None:
        self.feed(self.router.traces(TraceBatch(list(touches), pods or {})))

    def tick(self) -> None:
        self.engine.tick(PARTITION)
        self.settle()

    def latest(self, uid):
        events = [e for e in self.out if e["finding_uid"] == uid]
        return events[-1] if events else None
