"""PagerDuty Events API v2: ``trigger`` on escalated and updated, ``resolve`` on resolved and suppressed.

The ``dedup_key`` is the escalation uid (derived from the finding uid), so PagerDuty folds every
trigger of one finding into one open alert: a retried or re-delivered trigger never pages twice,
and the resolve closes the alert the trigger opened. PagerDuty answers 202 when it has the event,
400 for an invalid one (permanent), 429 and 5xx for "later" (see :mod:`stream.deliver.http`).

A priority change (an ``updated`` event) is a trigger with the same ``dedup_key`` and the new
severity: PagerDuty applies it to the open alert as a new trigger log entry, and the alert's new
severity sets the incident's urgency (dynamic notifications); the summary and ``custom_details``
say what it was before. A finding whose alert was resolved in the meantime opens a new one.

A suppressed event (a policy muted the finding) never pages: it resolves the finding's alert, like a
resolved event, harmless when none is open. The Events API gives a resolve no note of its own, so
the suppression (rule, owner, reason, ticket, expiry) travels in the resolve's ``payload``: a valid
payload the API accepts on any action and keeps with the event in the alert's log.

Limits (PagerDuty's documentation): ``summary`` 1024 characters, ``dedup_key`` 255, the whole
event 512 KB. PagerDuty names none for ``source``, ``component``, ``group`` and ``class``: hotpath
keeps them to 255 characters, and each ``custom_details`` entry to 32 KiB of JSON, so an event
stays well within 512 KB whatever the escalation held. ``custom_details`` names the controls the
finding fails (``compliance``, one line per framework) and the fix its source advises
(``remediation``: the description and the first reference).
"""

from __future__ import annotations

from stream.deliver.escalation import Escalation, compliance_lines, remediation_text, suppression_note, trace_links
from stream.deliver.http import HttpRequest, classify_response, fit_json, json_request
from stream.deliver.routing import Secret
from stream.deliver.sink import SinkKind
from stream.redact import truncate
from stream.settings import SinkSettings

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX_CHARS = 1024
FIELD_MAX_CHARS = 255
DETAIL_MAX_BYTES = 32 * 1024
EVENT_MAX_BYTES = 512 * 1024
SEVERITY_BY_PRIORITY = {"P1": "critical", "P2": "error", "P3": "warning", "P4": "info", "P5": "info"}

classify = classify_response


def build_request(escalation: Escalation, sink: SinkSettings, secret: Secret, *,
                  trace_url_template: str) -> HttpRequest:
    """The Events API v2 request for one escalation event."""
    event: dict = {"routing_key": secret.reveal(), "dedup_key": escalation.dedup_key}
    if escalation.state == "resolved":
        event["event_action"] = "resolve"
    elif escalation.state == "suppressed":
        event.update(event_action="resolve", payload=_suppression_payload(escalation))
    else:
        event.update(
            event_action="trigger",
            payload=_payload(escalation),
            links=[{"href": url, "text": text} for url, text in trace_links(escalation, trace_url_template)],
            client="hotpath",
        )
    return json_request(sink.url or DEFAULT_URL, event)


def _suppression_payload(escalation: Escalation) -> dict:
    """The resolve's record of the mute: the note as summary, the rule's fields as details."""
    muted = escalation.suppressed_by
    details = {"state": escalation.state, "version": escalation.version, "finding_uid": escalation.finding_uid,
               "suppressed_by": muted.model_dump() if muted else None, "policy_version": escalation.policy_version}
    return {
        "summary": truncate(suppression_note(escalation), SUMMARY_MAX_CHARS),
        "severity": SEVERITY_BY_PRIORITY[escalation.priority],
        "source": _source(escalation),
        "custom_details": _fitted(details),
    }


def _source(escalation: Escalation) -> str:
    return truncate(escalation.asset.service or escalation.resource, FIELD_MAX_CHARS)


def _fitted(details: dict) -> dict:
    """``custom_details`` without empty entries, each within ``DETAIL_MAX_BYTES`` of JSON."""
    return {key: fit_json(value, DETAIL_MAX_BYTES) for key, value in details.items() if value is not None}


def _payload(escalation: Escalation) -> dict:
    finding = escalation.finding
    change = escalation.priority_change
    label = f"{escalation.priority}, was {escalation.previous_priority}" if change else escalation.priority
    summary = f"[{label}] {finding.title} on {escalation.resource} (score {escalation.score:.0f})"
    details = {
        "priority": escalation.priority,
        "previous_priority": escalation.previous_priority,
        "score": escalation.score,
        "state": escalation.state,
        "version": escalation.version,
        "finding_uid": escalation.finding_uid,
        "finding": finding.model_dump(exclude={"compliance", "remediation"}),
        "compliance": compliance_lines(escalation) or None,
        "remediation": remediation_text(escalation),
        "reasons": escalation.reasons,
        "factors": escalation.factors.model_dump(),
        "evidence": escalation.evidence.model_dump(),
        "asset": escalation.asset.model_dump(),
    }
    payload = {
        "summary": truncate(summary, SUMMARY_MAX_CHARS),
        "severity": SEVERITY_BY_PRIORITY[escalation.priority],
        "source": _source(escalation),
        "component": truncate(escalation.resource, FIELD_MAX_CHARS),
        "class": truncate(finding.check, FIELD_MAX_CHARS),
        "timestamp": escalation.event_time,
        "custom_details": _fitted(details),
    }
    if escalation.asset.owner:
        payload["group"] = truncate(escalation.asset.owner, FIELD_MAX_CHARS)
    return payload


def event_requests(escalation: Escalation, sink: SinkSettings, secret: Secret, *, now: float,
                   trace_url_template: str) -> list[HttpRequest]:
    """The registry's builder: one trigger or resolve per event, the same whenever it is sent."""
    return [build_request(escalation, sink, secret, trace_url_template=trace_url_template)]


SINK = SinkKind("pagerduty", event_requests, classify, default_url=DEFAULT_URL)
