"""Configuration findings from any supported CSPM format, auto-detected per record.

A record of ``hotpath.findings`` holds one JSON value: a Prowler OCSF finding or array of them, an
ASFF finding, an ASFF ``{"Findings": [...]}`` batch, an EventBridge event ("Security Hub Findings -
Imported", "Findings Imported V2", "Config Rules Compliance Change"), a Security Hub OCSF finding,
or the bare ``detail`` of an AWS Config compliance change. Each format lives in its own module
(:mod:`~stream.ingest.formats.prowler`, :mod:`~stream.ingest.formats.securityhub`,
:mod:`~stream.ingest.formats.awsconfig`);
this one finds the format and turns the fields into validated :class:`~stream.models.Finding` s.

The helpers :func:`build` and :func:`each` are shared with the alert and asset decoders: they keep
every failure a :class:`~stream.models.DecodeError` whose reason says where in the record it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from stream.ingest.formats import awsconfig, securityhub
from stream.ingest.formats.eventtime import ANY_TIME, TimeBounds, check_representable, check_times
from stream.ingest.formats.prowler import PROWLER_PRODUCT, product_of, prowler_finding
from stream.jsonsafe import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    expect_dict,
    expect_list,
    loads,
)
from stream.models import Alert, DecodeError, Finding

Model = TypeVar("Model", bound=BaseModel)
Item = TypeVar("Item")
Result = TypeVar("Result")
Record = TypeVar("Record", Finding, Alert)

# EventBridge detail-type -> decoder of one item of detail.findings (None: the detail itself).
_FINDING_EVENTS: dict[str, Callable[[Any], dict[str, Any]] | None] = {
    securityhub.ASFF_EVENT: securityhub.asff_finding,
    securityhub.OCSF_EVENT: securityhub.ocsf_finding,
    awsconfig.DETAIL_TYPE: None,
}
SECURITY_HUB_PRODUCT = "arn:aws:securityhub:"


def build(model: type[Model], fields: dict[str, Any], what: str) -> Model:
    """Validate ``fields`` as ``model``; a time without a UTC offset is read as UTC.

    The producers hotpath reads write UTC, and a time without an offset would otherwise shift with
    the worker's local time zone. A time that has no UTC form (past year 9999) is refused here.
    """
    try:
        record = model.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise DecodeError(f"{what}: {field}: {error['msg']}") from None
    observed_at = getattr(record, "observed_at", None)
    if observed_at is not None and observed_at.tzinfo is None:
        record = record.model_copy(update={"observed_at": observed_at.replace(tzinfo=UTC)})
    if observed_at is not None:
        check_representable(record.observed_at, what)
    return record


def within(records: list[Record], bounds: TimeBounds) -> list[Record]:
    """``records`` when every event time is within ``bounds``; else a DecodeError for the first that is not."""
    for record in records:
        check_times(record, bounds)
    return records


def each(items: Iterable[Item], what: str, decode: Callable[[Item], list[Result]]) -> list[Result]:
    """Decode every item of a list; a failure names the item (``what[3]: reason``)."""
    decoded: list[Result] = []
    for index, item in enumerate(items):
        try:
            decoded.extend(decode(item))
        except DecodeError as exc:
            raise DecodeError(f"{what}[{index}]: {exc.reason}") from None
    return decoded


def _one(decoder: Callable[[Any], dict[str, Any]], what: str) -> Callable[[Any], list[Finding]]:
    return lambda item: [build(Finding, decoder(item), what)]


def _event_type(document: dict[str, Any]) -> str | None:
    detail_type = document.get("detail-type")
    return detail_type if isinstance(detail_type, str) else None


def _from_event(document: dict[str, Any]) -> list[Finding]:
    detail_type = _event_type(document)
    if detail_type not in _FINDING_EVENTS:
        raise DecodeError(f"EventBridge event detail-type {str(detail_type)[:60]!r} is not a finding event")
    detail = expect_dict(document.get("detail"), f"{detail_type} event detail")
    decoder = _FINDING_EVENTS[detail_type]
    if decoder is None:
        return [build(Finding, fields, "AWS Config finding")
                for fields in awsconfig.config_finding(detail, document.get("time"))]
    findings = expect_list(detail.get("findings"), f"{detail_type} event detail.findings")
    return each(findings, "detail.findings", _one(decoder, f"{detail_type} finding"))


def _ocsf_decoder(document: dict[str, Any]) -> Callable[[Any], dict[str, Any]]:
    product_uid, product_name = product_of(document)
    if PROWLER_PRODUCT in (product_uid, product_name):
        return prowler_finding
    if product_uid.startswith(SECURITY_HUB_PRODUCT):
        return securityhub.ocsf_finding
    shown = product_uid or product_name or "no metadata.product"
    raise DecodeError(f"OCSF finding from an unsupported product ({shown[:60]}): expected Prowler or Security Hub")


def _looks_like_finding(document: Any) -> bool:
    if not isinstance(document, dict):
        return False
    if "detail-type" in document:
        return _event_type(document) in _FINDING_EVENTS
    return (securityhub.is_asff(document) or "Findings" in document or "finding_info" in document
            or awsconfig.is_compliance_detail(document))


def is_finding_document(document: Any) -> bool:
    """True when ``document`` (an object, or an array of objects) has the shape of a finding format."""
    if isinstance(document, list):
        return bool(document) and all(_looks_like_finding(item) for item in document)
    return _looks_like_finding(document)


def _from_object(document: Any) -> list[Finding]:
    if not isinstance(document, dict):
        raise DecodeError(f"a finding must be a JSON object, got {type(document).__name__}")
    if "detail-type" in document:
        return _from_event(document)
    if securityhub.is_asff(document):
        return _one(securityhub.asff_finding, "ASFF finding")(document)
    if "Findings" in document:
        batch = expect_list(document["Findings"], "ASFF batch Findings")
        return each(batch, "Findings", _one(securityhub.asff_finding, "ASFF finding"))
    if "finding_info" in document:
        return _one(_ocsf_decoder(document), "OCSF finding")(document)
    if awsconfig.is_compliance_detail(document):
        return [build(Finding, fields, "AWS Config finding") for fields in awsconfig.config_finding(document)]
    raise DecodeError(
        "unknown finding format: expected Prowler OCSF, Security Hub ASFF or OCSF, or an AWS Config "
        "compliance change"
    )


def findings_from_document(document: Any) -> list[Finding]:
    """The findings in one parsed JSON value (an object or an array of objects), or a DecodeError."""
    if isinstance(document, list):
        return each(document, "", _from_object)
    return _from_object(document)


def decode_findings(value: bytes, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH,
                    bounds: TimeBounds = ANY_TIME) -> list[Finding]:
    """Decode one ``hotpath.findings`` record value into its findings, refusing implausible times."""
    return within(findings_from_document(loads(value, max_bytes, max_depth)), bounds)
