"""Hypothesis strategies for hostile input: real documents of each format, mutated, cut, overwritten, nested
deeper than any decoder takes."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import orjson
from hypothesis import strategies as st
from inputs import LEDGER, SG, compliance_finding, config_event, eks_finding, falco_event, v2_event
from paths import SAMPLES


def _samples(folder: str) -> list[Any]:
    """The documents of one folder of real public samples (none where the samples are absent)."""
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


def node_paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """The path (keys and indexes) of every node of ``node``, the root's first."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from node_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from node_paths(value, (*prefix, index))


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


def change_node(document: Any, path: tuple, replacement: Any) -> Any:
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
        path = draw(st.sampled_from(list(node_paths(document))))
        replacement = draw(st.one_of(
            st.just(DROP),
            json_values,
            st.integers(1, 1100).map(lambda depth: f"__nest_{depth}__"),
            st.integers(1_000, 100_000).map(lambda size: "A" * size),
        ))
        document = change_node(document, path, replacement)
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
    """Arrays and objects nested up to 3000 levels, past the 1024 orjson reads."""
    return st.integers(1, 3000).flatmap(lambda depth: st.sampled_from([
        b"[" * depth + b"]" * depth,
        b'{"Findings":' + b"[" * depth + b"]" * depth + b"}",
        b'{"a":' * depth + b"1" + b"}" * depth,
    ]))


def hostile(documents: list[Any]) -> st.SearchStrategy[bytes]:
    """Any of the damage above done to ``documents``, random bytes, or next to nothing."""
    return st.one_of(
        mutated(documents),
        damaged_bytes(documents),
        st.binary(max_size=2048),
        deep_nesting(),
        st.just(b"\x00" * 10), st.just(b""), st.just(b"   "),
    )
