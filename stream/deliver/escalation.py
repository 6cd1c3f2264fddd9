"""The escalation event as the sinks read it (:class:`stream.correlate.event.Escalation`), typed at the edge.

Events arrive a few per second at most, so each one is validated once when it is read from Kafka;
the sinks then use attributes instead of digging through dicts. Times stay the RFC 3339 strings
the schema carries.

Everything a sink sends is derived from that model, so this is where the event is made fit to leave
hotpath: :func:`masked_event` masks every sender-chosen text (finding titles and ids, resource and
alert ids, asset names, reasons) for card numbers and credentials, and the model then cuts every
text to ``TEXT_MAX_CHARS`` and every list to ``LIST_MAX_ITEMS`` (mask first, cut after, so a cut
never leaves part of a card number unmasked). Fields the schema does not name are dropped. Each
sink's payload is therefore bounded whatever the record held, before the sink applies its own API's
limits.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from stream import jsonsafe
from stream.correlate.event import TEXT_MAX_CHARS, Escalation, epoch_ms
from stream.models import DecodeError
from stream.redact import mask_fields

__all__ = ["TEXT_MAX_CHARS", "Escalation", "epoch_ms", "escalation_from_dict", "masked_event", "parse_escalation",
           "compliance_lines", "remediation_text", "suppression_note", "trace_links", "trace_url", "xray_trace_id"]
# Hex ids: the escalation uid (a digest hotpath derives), trace ids (32 hex digits) and policy versions (64),
# each checked by the model, leave no room for a credential, and masking a run of decimal digits inside one
# would break it.
UNMASKED_PATHS = frozenset({("escalation_uid",), ("evidence", "trace_ids"), ("policy_version",),
                            ("suppressed_by", "policy_version")})


def masked_event(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with every text in it masked (:func:`stream.redact.mask`), keys included.

    What the worker applies before publishing an escalation and before showing it on
    ``/escalations``; the sinks apply it again when they read the event, which changes nothing
    (masking is idempotent and deterministic, so a masked id still names one finding).
    """
    return mask_fields(event, UNMASKED_PATHS)


def parse_escalation(value: bytes | None, max_bytes: int = jsonsafe.DEFAULT_MAX_BYTES) -> Escalation:
    """Read one record of ``hotpath.escalations``, or raise DecodeError saying what is wrong with it."""
    if value is None:
        raise DecodeError("escalation record has no value")
    data = jsonsafe.expect_dict(jsonsafe.loads(value, max_bytes), "escalation event")
    return escalation_from_dict(data)


def escalation_from_dict(data: dict[str, Any]) -> Escalation:
    """The event masked, bounded and typed; DecodeError naming the first field that is wrong."""
    try:
        return Escalation.model_validate(masked_event(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"]) or "event"
        raise DecodeError(f"escalation event: {where}: {err['msg']}") from None


def xray_trace_id(trace_id: str) -> str:
    """A W3C trace id as AWS X-Ray writes it: ``1-``, its first 8 hex digits (X-Ray's epoch seconds), ``-``, rest."""
    return f"1-{trace_id[:8]}-{trace_id[8:]}"


def trace_url(url_template: str, trace_id: str) -> str:
    """The trace UI's link to one trace: ``{trace_id}`` (Jaeger, Tempo) or ``{xray_trace_id}`` (X-Ray) filled in.

    Plain replacement, not ``str.format``: a Grafana Explore link holds JSON braces of its own.
    """
    return url_template.replace("{trace_id}", trace_id).replace("{xray_trace_id}", xray_trace_id(trace_id))


def trace_links(escalation: Escalation, url_template: str) -> list[tuple[str, str]]:
    """``(url, text)`` for each sample trace, through the trace UI's URL template (see :func:`trace_url`)."""
    return [(trace_url(url_template, trace_id), f"Trace {trace_id}") for trace_id in escalation.evidence.trace_ids]


def compliance_lines(escalation: Escalation) -> list[str]:
    """One line per framework the finding fails, as a responder reads it: ``CIS-2.0: 2.1.5, 2.1.4``."""
    return [f"{framework}: {', '.join(controls)}" for framework, controls in escalation.finding.compliance.items()]


def remediation_text(escalation: Escalation) -> str | None:
    """The source's advice and its first reference, one per line; None when it gave none."""
    advice = escalation.finding.remediation
    if advice is None:
        return None
    return "\n".join(part for part in (advice.description, *advice.references[:1]) if part)


def suppression_note(escalation: Escalation) -> str:
    """What a paging sink records when it closes an incident for a mute: the rule, who accepted the risk, why, until
    when. The texts come from the masked event."""
    muted = escalation.suppressed_by
    if muted is None:
        return f"Suppressed by hotpath (version {escalation.version})"
    ticket = f"; ticket {muted.ticket}" if muted.ticket else ""
    until = f"until {muted.expires}" if muted.expires else "without expiry"
    return (f"Suppressed by hotpath policy rule {muted.rule_id} ({muted.source}, policy {muted.policy_version[:12]}), "
            f"{until}: accepted by {muted.owner}: {muted.reason}{ticket}")
