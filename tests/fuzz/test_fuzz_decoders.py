"""Hostile input never escapes a decoder as anything but DecodeError.

Hypothesis mutates the real samples and the field-for-field events of the format tests (drops keys,
changes types, nests deeply, inflates strings), cuts and flips their bytes, and throws random bytes
and deep nesting at decode_findings, decode_alerts and decode_assets. Whatever a decoder returns must
be valid normalized records that serialize; whatever it refuses must be a DecodeError with a reason.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paths import SAMPLES
from test_formats_alerts import eks_finding, falco_event
from test_formats_assets import LEDGER, SG
from test_formats_findings import compliance_finding, config_event, v2_event

from stream.entities.resolve import EntityResolver
from stream.ingest.formats.alerts import decode_alerts
from stream.ingest.formats.assets import decode_assets
from stream.ingest.formats.findings import decode_findings
from stream.models import Asset, DecodeError

MAX_BYTES = 256 * 1024
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _samples(folder: str) -> list[Any]:
    documents: list[Any] = []
    for path in sorted((SAMPLES / folder).glob("*.json")) if SAMPLES.is_dir() else ():
        document = orjson.loads(path.read_bytes())
        documents.extend(document if isinstance(document, list) else [document])
    return documents


FINDINGS = _samples("prowler-ocsf") + _samples("aws-securityhub-asff") + [
    config_event("NON_COMPLIANT"), v2_event(compliance_finding("Fail", 3)),
]
ALERTS = _samples("aws-guardduty") + [falco_event(), falco_event(uuid="5e1c"), eks_finding()]
ASSETS = [LEDGER, SG, {"assets": [LEDGER, SG]}]

json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30), st.sampled_from(["", "arn:aws:s3:::x", "2026-03-02T10:00:00Z", "Critical", "FAIL", "<NA>"]),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


_NESTED = re.compile(rb'"__nest_(\d+)__"')


def _encode(document: Any) -> bytes:
    """JSON bytes, with each nesting marker expanded to that many nested arrays.

    Deep nesting is written as text because orjson refuses to *write* more than 255 levels; the
    decoders must cope with up to the 1024 levels orjson *reads*, and refuse deeper ones.
    """
    return _NESTED.sub(lambda match: b"[" * int(match[1]) + b"1" + b"]" * int(match[1]), orjson.dumps(document))


def pick(documents: list[Any]) -> st.SearchStrategy[Any]:
    # By index: sampled_from would print every sample in hypothesis' reports.
    return st.integers(0, len(documents) - 1).map(lambda index: documents[index])


DROP = object()


def _change(document: Any, path: tuple, replacement: Any) -> Any:
    """``document`` with the node at ``path`` dropped (``DROP``) or replaced, in place."""
    if not path:
        return None if replacement is DROP else replacement
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if replacement is DROP:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return document


@st.composite
def mutated(draw: st.DrawFn, documents: list[Any]) -> bytes:
    """A real document with a few of its nodes dropped, retyped, nested deeply or inflated."""
    document = copy.deepcopy(draw(pick(documents)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(list(_paths(document))))
        replacement = draw(st.one_of(
            st.just(DROP),
            json_values,
            st.integers(1, 1100).map(lambda depth: f"__nest_{depth}__"),
            st.integers(1_000, 100_000).map(lambda size: "A" * size),
        ))
        document = _change(document, path, replacement)
    return _encode(document)


@st.composite
def damaged_bytes(draw: st.DrawFn, documents: list[Any]) -> bytes:
    """The bytes of a real document, cut short or with bytes overwritten."""
    raw = bytearray(orjson.dumps(draw(pick(documents))))
    if draw(st.booleans()):
        return bytes(raw[: draw(st.integers(0, len(raw) - 1))])
    for _ in range(draw(st.integers(1, 8))):
        raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    return bytes(raw)


def deep_nesting() -> st.SearchStrategy[bytes]:
    return st.integers(1, 3000).flatmap(lambda depth: st.sampled_from([
        b"[" * depth + b"]" * depth,
        b'{"Findings":' + b"[" * depth + b"]" * depth + b"}",
        b'{"a":' * depth + b"1" + b"}" * depth,
    ]))


def hostile(documents: list[Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated(documents),
        damaged_bytes(documents),
        st.binary(max_size=2048),
        deep_nesting(),
        st.just(b"\x00" * 10), st.just(b""), st.just(b"   "),
    )


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


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="real samples (../shared/samples) are absent")
@FUZZ
@given(hostile(FINDINGS))
def test_findings_decoder_only_ever_raises_decode_error(value):
    only_decode_errors(lambda raw: decode_findings(raw, MAX_BYTES), value)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="real samples (../shared/samples) are absent")
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
        for path in list(_paths(document))[1:]:
            for change in [DROP, *SINGLE_CHANGES]:
                yield orjson.dumps(_change(copy.deepcopy(document), path, change))


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="real samples (../shared/samples) are absent")
@pytest.mark.parametrize(("documents", "decode"), [
    (FINDINGS, lambda raw: decode_findings(raw, MAX_BYTES)),
    (ALERTS, lambda raw: decode_alerts(raw, resolver(), MAX_BYTES)),
    (ASSETS, lambda raw: decode_assets(raw, MAX_BYTES)),
], ids=["findings", "alerts", "assets"])
def test_every_single_dropped_or_retyped_field_gives_records_or_a_decode_error(documents, decode):
    for value in every_single_change(documents):
        only_decode_errors(decode, value)
