"""Memory and work per attacker-chosen key: what one trace message may make hotpath remember.

A span may name any number of resources, and a message any number of spans, pods and callers; each
name would become an entity state, a call-graph edge replicated to every worker, a learned pod. The
decoder keeps at most HOTPATH_MAX_ENTITIES_PER_SPAN per span and HOTPATH_MAX_ENTITIES_PER_MESSAGE per
message and says how many it dropped, once per message, for the dead-letter topic.
"""

from __future__ import annotations

import time

import orjson
import pytest
from engine_harness import Harness, finding, touch
from hostile import tables_call

from stream.correlate.correlator import Correlator
from stream.demo.tracegen import TraceBuilder, Workload, aws_call
from stream.entities.context import MAX_CALLERS_PER_ENTITY, Context
from stream.entities.resolve import EntityResolver
from stream.ingest.entity_events import encode_events
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.formats.otlp import decode_traces
from stream.ingest.router import Router
from stream.models import Touch, TraceBatch
from stream.settings import load_settings

T0 = 1_772_446_800.0
ASSET_TABLE = "arn:aws:dynamodb:eu-west-1:111122223333:table/orders"
HOSTILE_SPANS = 8
TABLES_PER_SPAN = 100_000  # about 1 MB of table names per span


@pytest.fixture(scope="module")
def hostile_message() -> bytes:
    """Eight spans, each naming 100,000 DynamoDB tables no other span names (about 8 MB)."""
    builder = TraceBuilder(seed=3)
    for span in range(HOSTILE_SPANS):
        names = tuple(f"{span * TABLES_PER_SPAN + i:x}" for i in range(TABLES_PER_SPAN))
        builder.client_span("orders", "BatchGetItem", start=T0 + span, attributes=tables_call(names))
    return builder.to_otlp_proto()


def test_a_span_naming_a_hundred_thousand_tables_touches_only_the_first_it_may(hostile_message):
    batch = decode_traces(hostile_message, EntityResolver())

    per_span = DecodeLimits().max_entities_per_span
    assert len(batch.touches) == HOSTILE_SPANS * per_span
    assert batch.touches[0].entity == "arn:aws:dynamodb:us-east-1:123456789012:table/0"
    dropped = HOSTILE_SPANS * (TABLES_PER_SPAN - per_span)
    assert batch.over_cap == (
        "message names more entities than hotpath keeps (128 per span, HOTPATH_MAX_ENTITIES_PER_SPAN; 4096 "
        "entities, pods and caller links per message, HOTPATH_MAX_ENTITIES_PER_MESSAGE): "
        f"{dropped} dropped, the rest routed")


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_a_message_touches_at_most_the_per_message_cap_whatever_its_spans_name(encoding):
    builder = TraceBuilder(seed=4)
    for span in range(60):
        names = tuple(f"orders-{span}-{i}" for i in range(10))
        builder.client_span("orders", "BatchGetItem", start=T0 + span, attributes=tables_call(names))
    value = builder.to_otlp_proto() if encoding == "otlp_proto" else builder.to_otlp_json()

    batch = decode_traces(value, EntityResolver(), encoding=encoding,
                          limits=DecodeLimits(max_entities_per_span=8, max_entities_per_message=100))

    assert len(batch.touches) == 100
    # 60 spans name 10 tables: 2 over the span cap each, and 480 - 100 beyond the message's first 100.
    assert batch.over_cap.endswith(": 500 dropped, the rest routed")


def test_pods_learned_from_one_message_are_capped():
    builder = TraceBuilder(seed=5, workloads=[Workload(f"svc-{n}", pod=f"svc-{n}-7d9f8c6b5-x2k4q") for n in range(30)])
    for n in range(30):
        builder.server_span(f"svc-{n}", "GET /", start=T0, client_address="10.0.0.1")

    batch = decode_traces(builder.to_otlp_proto(), EntityResolver(),
                          limits=DecodeLimits(max_entities_per_message=20))

    assert len(batch.pods) == 20
    assert len(batch.touches) == 20
    assert batch.over_cap.endswith(": 20 dropped, the rest routed")  # 10 pods and 10 services


def test_callers_of_one_entity_in_one_message_are_capped():
    """A hundred services of one message calling one bucket: as many caller edges as the context keeps."""
    builder = TraceBuilder(seed=6)
    for n in range(100):
        builder.client_span(f"caller-{n}", "GetObject", start=T0,
                            attributes=aws_call("S3", "GetObject", {"aws.s3.bucket": "acme-statements"}))

    batch = decode_traces(builder.to_otlp_proto(), EntityResolver())

    (touch,) = batch.touches
    assert (touch.spans, len(touch.services)) == (100, MAX_CALLERS_PER_ENTITY)
    assert batch.over_cap.endswith(f": {100 - MAX_CALLERS_PER_ENTITY} dropped, the rest routed")


def test_an_honest_message_drops_nothing():
    builder = TraceBuilder(seed=7)
    builder.client_span("orders", "BatchGetItem", start=T0, attributes=tables_call(tuple(f"t{i}" for i in range(100))))
    batch = decode_traces(builder.to_otlp_proto(), EntityResolver())
    assert (len(batch.touches), batch.over_cap) == (100, None)


# --- learned pods --------------------------------------------------------------------------------------

STEP_S = 60.0
HOUR_S = 3600.0


def pods_batch(pods: dict[str, str], at: float) -> TraceBatch:
    return TraceBatch([Touch(service, [], 1, 0, 0, at, at) for service in set(pods.values())], pods)


def test_pods_no_trace_shows_any_more_are_pruned_with_the_rest_of_the_context():
    context = Context()
    router = Router(context, STEP_S)
    router.traces(pods_batch({"cart-5f6d7c8b9-abcde": "service:cart", "pay-7d9f8c6b5-x2k4q": "service:pay"}, T0))
    router.traces(pods_batch({"pay-7d9f8c6b5-x2k4q": "service:pay"}, T0 + HOUR_S))

    context.prune(T0 + HOUR_S / 2)

    resolver = context.resolver
    assert (resolver.service_of_pod("cart-5f6d7c8b9-abcde"), resolver.pods_of("service:cart")) == (None, set())
    assert resolver.service_of_pod("pay-7d9f8c6b5-x2k4q") == "service:pay"


def test_pod_facts_carry_when_the_pod_was_seen_so_every_worker_prunes_alike():
    """Another worker learns pods from the context topic: it keeps a pod while traces keep showing it."""
    context = Context()
    router = Router(context, STEP_S)
    other = Context()
    for minute in range(0, 120, 10):
        for key, value in router.traces(pods_batch({"pay-7d9f8c6b5-x2k4q": "service:pay"}, T0 + minute * 60)).facts:
            other.apply(key, value)
    for key, value in router.traces(pods_batch({"cart-5f6d7c8b9-abcde": "service:cart"}, T0)).facts:
        other.apply(key, value)

    other.prune(T0 + HOUR_S)

    assert other.resolver.service_of_pod("pay-7d9f8c6b5-x2k4q") == "service:pay"
    assert other.resolver.service_of_pod("cart-5f6d7c8b9-abcde") is None


def lookup_time(resolver: EntityResolver, pods: list[str]) -> float:
    started = time.perf_counter()
    for pod in pods:
        resolver.service_of_pod(pod)
    return time.perf_counter() - started


def test_a_pod_lookup_does_not_scan_every_learned_pod():
    """Falco alerts name pods no trace has shown: resolving one must not cost more as pods pile up."""
    few, many = EntityResolver(), EntityResolver()
    for n in range(100):
        few.learn_pod(f"svc-{n}-7d9f8c6b5-x2k4q", f"service:svc-{n}")
    for n in range(100_000):
        many.learn_pod(f"svc-{n}-7d9f8c6b5-x2k4q", f"service:svc-{n}")
    unknown = [f"stranger-{n}-7d9f8c6b5-x2k4q" for n in range(200)]
    ratio = min(lookup_time(many, unknown) for _ in range(3)) / min(lookup_time(few, unknown) for _ in range(3))
    assert ratio < 10, f"a lookup among 100,000 learned pods takes {ratio:.0f} times one among 100"


# --- which entities keep traffic state -----------------------------------------------------------------


def made_up_table(n: int) -> str:
    return f"arn:aws:dynamodb:eu-west-1:111122223333:table/made-up-{n}"


def test_traffic_on_made_up_resources_keeps_a_bounded_number_of_states_and_no_shared_edges():
    """Five thousand tables no finding or asset names: a hundred states on this worker, no call-graph edge."""
    h = Harness(max_unclaimed_entities=100)
    h.asset(id=ASSET_TABLE)
    facts = []
    for batch in range(50):
        tables = [touch(made_up_table(batch * 100 + n), ["service:orders"], batch) for n in range(100)]
        routed = h.router.traces(TraceBatch([touch(ASSET_TABLE, ["service:orders"], batch), *tables]))
        facts += [key for key, _ in routed.facts]
        h.feed(routed)

    assert len(h.store) == 101
    assert ASSET_TABLE in h.store and made_up_table(4999) in h.store and made_up_table(4899) not in h.store
    assert facts == [f"edge|service:orders|{ASSET_TABLE}"]
    assert h.context.size()["edges"] == 1


def finding_after_traffic(tables_touched_since: int) -> tuple[str, dict | None]:
    """A made-up table called from an internet-facing service, then other tables, then a finding on it:
    the table and the finding's latest escalation event."""
    h = Harness(max_unclaimed_entities=100)
    table = made_up_table(1)
    h.traces(touch("service:payments-api", [], 10, internet=40), touch(table, ["service:payments-api"], 12, spans=500))
    h.traces(*[touch(made_up_table(100 + n), ["service:orders"], 13) for n in range(tables_touched_since)])
    h.feed(h.router.finding(finding("f-table", table, when=20)))
    return table, h.latest("f-table")


def test_a_finding_arriving_after_its_traffic_still_sees_the_traffic_and_its_path():
    """The resource is off the shared call graph: its own state tells who called it, and from where."""
    table, event = finding_after_traffic(99)
    assert (event["state"], event["priority"]) == ("escalated", "P2")
    assert event["factors"]["exposure_path"] == ["service:payments-api", table]
    assert "reached from the internet via payments-api" in event["reasons"]


def test_a_finding_after_the_bound_moved_past_its_traffic_is_held():
    _, event = finding_after_traffic(100)
    assert event is None


def test_a_worker_recovering_the_states_keeps_the_same_bound():
    """After a restart the recovered states are the store: the oldest made-up ones beyond the bound go."""
    before = Harness(max_unclaimed_entities=200)
    before.traces(*[touch(made_up_table(n), ["service:orders"], n) for n in range(150)])
    after = Correlator(load_settings(max_unclaimed_entities=100), before.context, before.store)

    after.restore_live()

    assert len(before.store) == 100
    assert made_up_table(149) in before.store and made_up_table(49) not in before.store


# --- entity-event records ------------------------------------------------------------------------------

RECORD_LIMIT = 256 * 1024


def test_entity_events_of_a_large_batch_are_split_into_records_the_broker_takes():
    events = [(made_up_table(n), touch(made_up_table(n), ["service:orders"], n).to_record()) for n in range(5000)]

    records, too_large = encode_events(events, RECORD_LIMIT)

    assert len(records) > 1 and too_large == []
    assert max(len(record) for record in records) <= RECORD_LIMIT
    assert [event for record in records for event in orjson.loads(record)] == [list(event) for event in events]


def test_an_event_no_record_can_hold_is_set_apart_and_the_rest_still_sent():
    huge = ("arn:aws:s3:::acme-statements", {"kind": "finding", "title": "x" * RECORD_LIMIT})
    small = (made_up_table(1), touch(made_up_table(1), [], 1).to_record())

    records, too_large = encode_events([small, huge, small], RECORD_LIMIT)

    assert too_large == [huge]
    assert [orjson.loads(record) for record in records] == [[list(small), list(small)]]


def test_a_usual_batch_stays_one_record():
    events = [(made_up_table(n), touch(made_up_table(n), [], n).to_record()) for n in range(10)]
    assert encode_events(events, RECORD_LIMIT) == ([orjson.dumps(events)], [])
