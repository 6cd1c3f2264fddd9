"""Hostile input never escapes a decoder as anything but DecodeError.

Hypothesis mutates the real samples and the field-for-field events of the format tests (drops keys,
changes types, nests deeply, inflates strings), cuts and flips their bytes, and throws random bytes
and deep nesting at decode_findings, decode_alerts and decode_assets. Whatever a decoder returns must
be valid normalized records that serialize; whatever it refuses must be a DecodeError with a reason.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from fuzzing import ALERTS, ASSETS, DROP, FINDINGS, change_node, hostile, node_paths
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inputs import needs_samples

from stream.entities.resolve import EntityResolver
from stream.ingest.formats.alerts import decode_alerts
from stream.ingest.formats.assets import decode_assets
from stream.ingest.formats.findings import decode_findings
from stream.models import Asset, DecodeError

MAX_BYTES = 256 * 1024
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def only_decode_errors(decode: Callable[[bytes], list], value: bytes) -> None:
    try:
        records = decode(value)
    except DecodeError as exc:
        assert exc.reason and isinstance(exc.reason, str)
        return
    for record in records:
        orjson.dumps(record.to_record())  # what inspect prints and the worker sends must serialize
        if not isinstance(record, Asset):
            assert record.observed_at.tzinfo is not None


def resolver() -> EntityResolver:
    known = EntityResolver()
    known.add_asset(Asset(id="service:payments", aliases=["payments-api", "10.0.8.21"]))
    known.learn_pod("payments-api-7d9f8c6b5-x2k4q", "service:payments-api")
    return known


@needs_samples
@FUZZ
@given(hostile(FINDINGS))
def test_findings_decoder_only_ever_raises_decode_error(value):
    only_decode_errors(lambda raw: decode_findings(raw, MAX_BYTES), value)


@needs_samples
@FUZZ
@given(hostile(ALERTS))
def test_alerts_decoder_only_ever_raises_decode_error(value):
    only_decode_errors(lambda raw: decode_alerts(raw, resolver(), MAX_BYTES), value)


@FUZZ
@given(hostile(ASSETS))
def test_assets_decoder_only_ever_raises_decode_error(value):
    only_decode_errors(lambda raw: decode_assets(raw, MAX_BYTES), value)


@FUZZ
@given(st.integers(MAX_BYTES + 1, 4 * MAX_BYTES))
def test_oversized_records_are_refused_before_parsing(size):
    value = b'{"assets": ["' + b"A" * size + b'"]}'
    for decode in (decode_findings, decode_assets, lambda raw, limit: decode_alerts(raw, EntityResolver(), limit)):
        with pytest.raises(DecodeError, match=f"over the {MAX_BYTES}-byte limit"):
            decode(value, MAX_BYTES)


SINGLE_CHANGES: list[Any] = [None, 0, -1, 1e300, True, "", "x" * 5000, [], {}, [[]], {"": None}]


def every_single_change(documents: list[Any]) -> Iterator[bytes]:
    """Each document with one node dropped, or replaced by each value of another type: all of them."""
    for document in documents:
        for path in list(node_paths(document))[1:]:
            for change in [DROP, *SINGLE_CHANGES]:
                yield orjson.dumps(change_node(copy.deepcopy(document), path, change))


@needs_samples
@pytest.mark.parametrize(("documents", "decode"), [
    (FINDINGS, lambda raw: decode_findings(raw, MAX_BYTES)),
    (ALERTS, lambda raw: decode_alerts(raw, resolver(), MAX_BYTES)),
    (ASSETS, lambda raw: decode_assets(raw, MAX_BYTES)),
], ids=["findings", "alerts", "assets"])
def test_every_single_dropped_or_retyped_field_gives_records_or_a_decode_error(documents, decode):
    for value in every_single_change(documents):
        only_decode_errors(decode, value)
