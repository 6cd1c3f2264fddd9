"""OTLP traces (as the Collector's Kafka exporter writes them) folded into per-entity touches.

One Kafka message is one ``ExportTraceServiceRequest``: ``otlp_proto`` (protobuf) or ``otlp_json``
(protobuf JSON with hex trace and span ids). :class:`OtlpDecoder` walks the message in its wire
format (:mod:`.protobuf`, :mod:`.json`) and feeds every span to one fold (:mod:`.fold`), which makes
one :class:`~stream.models.Touch` per entity the message reaches (:mod:`.touches` says what a span
touches, :mod:`.semconv` which attributes are read), so downstream cost follows entities per
message, not spans.

``otlp_proto`` is walked by a compiled extension (``wire.c``) where ``pip install`` could build it:
it sums the spans per group in one pass over the wire bytes, so Python works per group, not per span.
Whatever it is unsure of (a limit, malformed bytes) it leaves to the pure-Python walk, which remains the
fallback where no C compiler was at hand; ``HOTPATH_OTLP_DECODER=python|compiled|auto`` forces one
(tests, the benchmark). :func:`decoder_name` says which one runs.

What the decoder keeps across messages (resources, span targets, callers, whether a caller address is
public, hosts, statuses, short attribute values) is owned by its instance and bounded: each cache starts
over once it holds ``cache_limit`` entries.
"""

from __future__ import annotations

import os
from typing import Literal

from stream.entities.resolve import EntityResolver
from stream.ingest.formats.eventtime import check_times
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.formats.otlp.fold import MAX_CACHED_ENTRIES, FoldCaches, MessageFold
from stream.ingest.formats.otlp.json import json_spans, json_value
from stream.ingest.formats.otlp.protobuf import COMPILED_WALK, ProtobufWalk
from stream.models import DecodeError, TraceBatch
from stream.settings import ConfigError

__all__ = ["DECODER_VARIABLE", "Decoder", "Encoding", "OtlpDecoder", "decode_traces", "decoder_name",
           "detect_encoding"]

Encoding = Literal["otlp_proto", "otlp_json"]
Decoder = Literal["auto", "compiled", "python"]
DECODER_VARIABLE = "HOTPATH_OTLP_DECODER"


def decoder_name(choice: str | None = None) -> Literal["compiled", "python"]:
    """Which walk decodes ``otlp_proto``: ``choice``, else ``HOTPATH_OTLP_DECODER``, else the compiled one
    where it was built. Raises :class:`ConfigError` for an unknown choice, or ``compiled`` where it was not built."""
    choice = choice or os.environ.get(DECODER_VARIABLE) or "auto"
    if choice not in ("auto", "compiled", "python"):
        raise ConfigError(f"{DECODER_VARIABLE} must be auto, compiled or python, got {choice[:40]!r}")
    if choice == "compiled" and COMPILED_WALK is None:
        raise ConfigError(f"{DECODER_VARIABLE}=compiled but the compiled OTLP decoder is not built "
                          "(install hotpath where a C compiler is: make setup)")
    return "compiled" if choice != "python" and COMPILED_WALK is not None else "python"


def detect_encoding(value: bytes) -> Encoding:
    """``otlp_json`` when the record is a JSON object, else ``otlp_proto``."""
    return "otlp_json" if bytes(value[:64]).lstrip()[:1] == b"{" else "otlp_proto"


class OtlpDecoder:
    """Trace messages to touches for one resolver and one set of limits; make one per consumer and reuse it.

    What a span touches is worked out once per distinct resource, kind and attribute values and kept
    for later messages (with traces partitioned by trace id a message holds few spans, and working it
    out afresh each time would dominate); the asset aliases are still consulted per message.
    """

    def __init__(self, resolver: EntityResolver, limits: DecodeLimits | None = None, *,
                 cache_limit: int = MAX_CACHED_ENTRIES, decoder: Decoder | None = None) -> None:
        self.compiled = decoder_name(decoder) == "compiled"
        self.resolver = resolver
        self.limits = limits or DecodeLimits()
        self.fold_caches = FoldCaches(cache_limit)
        self.protobuf = ProtobufWalk(self.limits, cache_limit)

    def decode(self, value: bytes, encoding: Encoding = "otlp_proto") -> TraceBatch:
        """Fold one OTLP trace message into touches; raises only :class:`DecodeError`."""
        limits = self.limits
        if isinstance(value, bytearray | memoryview):
            value = bytes(value)
        elif not isinstance(value, bytes):
            raise DecodeError(f"an OTLP record must be bytes, got {type(value).__name__}")
        if len(value) > limits.max_record_bytes:
            raise DecodeError(
                f"record is {len(value)} bytes, over the {limits.max_record_bytes}-byte limit "
                "(HOTPATH_MAX_RECORD_BYTES)"
            )
        if encoding == "otlp_proto":
            fold = MessageFold(self.resolver, limits, self.fold_caches, self.protobuf.value)
            if not (self.compiled and self.protobuf.fold_compiled(value, fold)):
                fold.fold(self.protobuf.spans(value, fold))
        elif encoding == "otlp_json":
            fold = MessageFold(self.resolver, limits, self.fold_caches, json_value)
            fold.fold(json_spans(value, fold, limits))
        else:
            raise DecodeError(f"unknown trace encoding {encoding!r} (expected otlp_proto or otlp_json)")
        batch = fold.batch()
        bounds = limits.time_bounds()
        # Every touch's first span end is at or before its last: when the batch's earliest and latest are within
        # bounds, so is every touch, and the per-touch check (which words its refusal up front) is skipped.
        touches = batch.touches
        if touches and not (bounds.earliest <= min(touch.first_seen for touch in touches)
                            and max(touch.last_seen for touch in touches) <= bounds.latest):
            for touch in touches:
                check_times(touch, bounds)
        return batch


def decode_traces(
    value: bytes,
    resolver: EntityResolver,
    *,
    encoding: Encoding = "otlp_proto",
    limits: DecodeLimits | None = None,
) -> TraceBatch:
    """One message decoded by a decoder of its own: for one-off callers; a stream of messages wants one
    :class:`OtlpDecoder`, whose caches carry over."""
    return OtlpDecoder(resolver, limits).decode(value, encoding)
