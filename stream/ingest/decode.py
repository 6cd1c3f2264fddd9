"""Decoding: the raw value of one input record, in any supported format, to routed entity events."""

from __future__ import annotations

from stream.ingest.formats.alerts import decode_alerts
from stream.ingest.formats.assets import decode_assets
from stream.ingest.formats.findings import decode_findings
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.formats.otlp import OtlpDecoder, detect_encoding
from stream.ingest.router import Routed, Router
from stream.models import DecodeError, TraceBatch


class Ingest:
    """Decode a raw Kafka value of one input stream and route what it holds.

    The one place the worker turns bytes into entity events; raises only DecodeError, which the
    caller turns into a dead-letter record.
    """

    def __init__(self, router: Router, limits: DecodeLimits, traces_encoding: str = "auto") -> None:
        self.router = router
        self.limits = limits
        self.traces_encoding = traces_encoding
        self._json_limits = (limits.max_record_bytes, limits.max_json_depth)
        self._traces = OtlpDecoder(router.context.resolver, limits)

    def __call__(self, stream: str, value: bytes | None) -> Routed:
        if value is None:
            if stream == "assets":
                return Routed()  # a tombstone: the context feed forgets the asset
            raise DecodeError("empty record (no value)")
        if stream == "traces":
            return self.router.traces(self.decode_traces(value))
        routed = Routed()
        if stream == "findings":
            findings = decode_findings(value, *self._json_limits, self.limits.finding_time_bounds())
            parts = [self.router.finding(f) for f in findings]
        elif stream == "alerts":
            alerts = decode_alerts(value, self.router.context.resolver, *self._json_limits, self.limits.time_bounds())
            parts = [self.router.alert(a) for a in alerts]
        elif stream == "assets":
            parts = [self.router.asset(a) for a in decode_assets(value, *self._json_limits)]
        else:
            raise ValueError(f"unknown input stream {stream!r}")
        for part in parts:
            routed.events += part.events
            routed.facts += part.facts
        return routed

    def decode_traces(self, value: bytes) -> TraceBatch:
        """One trace message folded into touches, for callers that route several messages at once."""
        encoding = detect_encoding(value) if self.traces_encoding == "auto" else self.traces_encoding
        return self._traces.decode(value, encoding)
