"""The context feed's apply path: what a batch of records read from the context topics does to the Context.

Reading the topics themselves (and a feed that stops) is tests/broker/test_contextfeed.py; here the
batches are handed to the feed as its reading thread hands them to the event loop.
"""

from __future__ import annotations

import logging

import orjson
import pytest

from stream.entities.context import Context
from stream.ingest.router import Router
from stream.metrics import Metrics
from stream.models import TraceBatch
from stream.settings import load_settings
from stream.worker.contextfeed import ContextFeed

SETTINGS = load_settings()
ASSETS, FACTS = SETTINGS.topic_assets, SETTINGS.topic_context
LEDGER = "arn:aws:s3:::ledger-exports"
EDGE_KEY, EDGE_VALUE = Context.edge_fact("service:edge", "service:ledger", 1_772_446_800.0)
CARD = "4111 1111 1111 1111"
T0 = 1_772_446_800.0  # 2026-03-02T10:20:00Z, the start of a window step


def asset_record(asset_id: str, alias: str, offset: int = 0) -> tuple:
    value = orjson.dumps({"id": asset_id, "aliases": [alias], "tags": {"criticality": "high"}})
    return ASSETS, 0, offset, asset_id.encode(), value


def fact_record(key: str, value: bytes | None, offset: int = 0) -> tuple:
    return FACTS, 0, offset, key.encode(), value


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def feed(metrics) -> ContextFeed:
    return ContextFeed(SETTINGS, Context(), metrics.feed_records)


def outcomes(metrics: Metrics) -> tuple[int, int]:
    """(applied, skipped) as the worker's /metrics shows them (hotpath_feed_records_total)."""
    return tuple(int(metrics.registry.get_sample_value("hotpath_feed_records_total",
                                                       {"feed": "context", "outcome": outcome}) or 0)
                 for outcome in ("applied", "skipped"))


def test_assets_and_facts_are_applied_to_the_context(feed, metrics):
    feed._apply([asset_record(LEDGER, "ledger-exports"), fact_record(EDGE_KEY, orjson.dumps(EDGE_VALUE), 1)])

    assert feed.context.resolver.resolve("ledger-exports") == LEDGER
    assert feed.context.size()["edges"] == 1
    assert outcomes(metrics) == (2, 0)


def test_an_asset_tombstone_forgets_the_asset(feed):
    feed._apply([asset_record(LEDGER, "ledger-exports")])

    feed._apply([(ASSETS, 0, 1, LEDGER.encode(), None)])

    assert feed.context.resolver.resolve("ledger-exports") is None
    assert feed.context.size()["assets"] == 0


def test_records_the_context_has_no_use_for_are_neither_applied_nor_skipped(feed, metrics):
    feed._apply([
        (FACTS, 0, 0, None, orjson.dumps(EDGE_VALUE)),  # no key
        fact_record(EDGE_KEY, None, 1),  # a fact tombstone: facts age out by time instead
        (ASSETS, 0, 2, b"bad-asset", b'{"not": "an asset"}'),  # ingest dead-letters bad asset records
    ])

    assert feed.context.size() == Context().size()
    assert outcomes(metrics) == (0, 0)


def test_hostile_records_are_skipped_with_the_reason_and_the_rest_of_the_batch_applied(feed, caplog, metrics):
    hostile = [
        (ASSETS, 3, 7, b"\xff\xfe not text", None),
        (FACTS, 1, 8, b"\xff\xfe not text", orjson.dumps(EDGE_VALUE)),
        fact_record("internet|service:edge", b"{oops", 9),
        fact_record(EDGE_KEY, b'{"first_seen": 1}', 10),
        fact_record(f"asset|{LEDGER}", orjson.dumps({"id": [CARD]}), 11),
    ]

    with caplog.at_level(logging.WARNING, logger="hotpath.context"):
        feed._apply([asset_record(LEDGER, "ledger-exports"), *hostile, fact_record(EDGE_KEY, orjson.dumps(EDGE_VALUE))])

    assert outcomes(metrics) == (2, 5)
    assert feed.context.resolver.resolve("ledger-exports") == LEDGER and feed.context.size()["edges"] == 1
    reasons = [record.getMessage() for record in caplog.records]
    assert reasons[0].startswith(f"context feed: skipped {ASSETS}[3]@7: UnicodeDecodeError")
    assert reasons[1].startswith(f"context feed: skipped {FACTS}[1]@8: UnicodeDecodeError")
    assert reasons[2].startswith(f"context feed: skipped {FACTS}[0]@9: JSONDecodeError")
    assert reasons[3] == f"context feed: skipped {FACTS}[0]@10: KeyError: 'last_seen'"
    assert reasons[4].startswith(f"context feed: skipped {FACTS}[0]@11: ValidationError")
    assert CARD not in reasons[4] and "input_value" in reasons[4], reasons[4]


def test_a_fact_another_worker_published_is_not_published_again_until_it_is_due_a_refresh(metrics):
    # Two workers reading shares of the same traffic see the same pod; each reads the shared topic in full.
    first, second = (Router(Context(), SETTINGS.window_step_s) for _ in range(2))
    feed = ContextFeed(SETTINGS, second.context, metrics.feed_records, second)
    pod = TraceBatch([], {"checkout-7d9f": "service:checkout"}, last_seen=T0)
    published = first.traces(pod).facts
    assert [key for key, _ in published] == ["pod|checkout-7d9f"]

    feed._apply([fact_record(key, orjson.dumps(value), offset) for offset, (key, value) in enumerate(published)])

    assert second.traces(TraceBatch([], pod.pods, last_seen=T0 + 1)).facts == []
    # A window step on, whichever worker sees the pod first says it still runs.
    later = T0 + SETTINGS.window_step_s
    assert second.traces(TraceBatch([], pod.pods, last_seen=later)).facts == [
        ("pod|checkout-7d9f", {"service": "service:checkout", "last_seen": later})]
