"""Runtime alerts from Falco and GuardDuty, auto-detected per record, resolved to entities.

A record of ``hotpath.alerts`` holds one JSON value: a Falco event (raw, or as falcosidekick
publishes it), a GuardDuty finding (bare, or in the EventBridge "GuardDuty Finding" event), or an
array of them. The formats live in :mod:`~stream.ingest.formats.falco` and :mod:`~stream.ingest.formats.guardduty`;
the resolver turns pods and names into the entities the alerts concern.
"""

from __future__ import annotations

from typing import Any

from stream.entities.resolve import EntityResolver
from stream.ingest.formats.eventtime import ANY_TIME, TimeBounds
from stream.ingest.formats.falco import falco_alert, is_falco
from stream.ingest.formats.findings import build, each, within
from stream.ingest.formats.guardduty import EVENT_DETAIL_TYPE, guardduty_alert, is_guardduty
from stream.jsonsafe import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, expect_dict, loads
from stream.models import Alert, DecodeError


def _looks_like_alert(document: Any) -> bool:
    if not isinstance(document, dict):
        return False
    if "detail-type" in document:
        return document["detail-type"] == EVENT_DETAIL_TYPE
    return is_falco(document) or is_guardduty(document)


def is_alert_document(document: Any) -> bool:
    """True when ``document`` (an object, or an array of objects) has the shape of an alert format."""
    if isinstance(document, list):
        return bool(document) and all(_looks_like_alert(item) for item in document)
    return _looks_like_alert(document)


def _from_object(document: Any, resolver: EntityResolver) -> list[Alert]:
    if not isinstance(document, dict):
        raise DecodeError(f"an alert must be a JSON object, got {type(document).__name__}")
    if "detail-type" in document:
        if document["detail-type"] != EVENT_DETAIL_TYPE:
            shown = str(document["detail-type"])[:60]
            raise DecodeError(f"EventBridge event detail-type {shown!r} is not a GuardDuty finding")
        detail = expect_dict(document.get("detail"), "GuardDuty event detail")
        return [build(Alert, guardduty_alert(detail, resolver), "GuardDuty finding")]
    if is_falco(document):
        return [build(Alert, falco_alert(document, resolver), "Falco event")]
    if is_guardduty(document):
        return [build(Alert, guardduty_alert(document, resolver), "GuardDuty finding")]
    raise DecodeError("unknown alert format: expected a Falco event or a GuardDuty finding")


def alerts_from_document(document: Any, resolver: EntityResolver) -> list[Alert]:
    """The alerts in one parsed JSON value (an object or an array of objects), or a DecodeError."""
    if isinstance(document, list):
        return each(document, "", lambda item: _from_object(item, resolver))
    return _from_object(document, resolver)


def decode_alerts(value: bytes, resolver: EntityResolver, max_bytes: int = DEFAULT_MAX_BYTES,
                  max_depth: int = DEFAULT_MAX_DEPTH, bounds: TimeBounds = ANY_TIME) -> list[Alert]:
    """Decode one ``hotpath.alerts`` record value into its alerts, refusing implausible times."""
    return within(alerts_from_document(loads(value, max_bytes, max_depth), resolver), bounds)
