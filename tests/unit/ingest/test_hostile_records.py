"""Ingest refuses a record too large, or naming an entity too long, with the reason, before it costs memory."""

from __future__ import annotations

import pytest
from hostile import FIFTY_MB, fifty_megabyte_finding

from stream.demo.tracegen import TraceBuilder, aws_call
from stream.entities.context import Context
from stream.ingest.decode import Ingest
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.router import Router
from stream.models import DecodeError


def test_ingest_refuses_a_fifty_megabyte_record_before_parsing_it():
    ingest = Ingest(Router(Context(), 60.0), DecodeLimits())
    for stream in ("findings", "alerts", "assets", "traces"):
        with pytest.raises(DecodeError, match=f"record is {FIFTY_MB} bytes, over the 8388608-byte limit"):
            ingest(stream, fifty_megabyte_finding())


@pytest.mark.parametrize("where", ["bucket", "service"])
def test_an_entity_named_by_an_over_long_attribute_is_refused(where):
    """Entity ids travel as record keys and state: one attribute may not make a megabyte of them."""
    long_name = "b" * 5000
    builder = TraceBuilder(seed=1)
    service = long_name if where == "service" else "payments-api"
    bucket = long_name if where == "bucket" else "acme-statements"
    builder.client_span(service, "PutObject", start=1.7e9,
                        attributes=aws_call("S3", "PutObject", {"aws.s3.bucket": bucket}))
    ingest = Ingest(Router(Context(), 60.0), DecodeLimits())

    with pytest.raises(DecodeError, match=r"a span names an entity of 50\d\d characters, over the 2048-character"):
        ingest("traces", builder.to_otlp_proto())
