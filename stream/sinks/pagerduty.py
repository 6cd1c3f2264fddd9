"""PagerDuty Events API v2: ``trigger`` on escalated and updated, ``resolve`` on resolved.

The ``dedup_key`` is the escalation uid (derived from the finding uid), so PagerDuty folds every
trigger of one finding into one open alert: a retried or re-delivered trigger never pages twice,
and the resolve closes the alert the trigger opened. PagerDuty answers 202 when it has the event,
400 for an invalid one (permanent), 429 and 5xx for "later" (see :mod:`stream.sinks.http`).
"""

from __future__ import annotations

from stream.settings import SinkSettings
from stream.sinks.escalation import Escalation, trace_links
from stream.sinks.http import HttpRequest, classify_response, json_request, truncate
from stream.sinks.routing import Secret

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX_CHARS = 1024
SEVERITY_BY_PRIORITY = {"P1": "critical", "P2": "error", "P3": "warning", "P4": "info", "P5": "info"}

classify = classify_response


def build_request(escalation: Escalation, sink: SinkSettings, secret: Secret, *, trace_url_template: str) -> HttpRequest:
    """The Events API v2 request for one escalation event."""
    event: dict = {"routing_key": secret.reveal(), "dedup_key": escalation.dedup_key}
    if escalation.state == "resolved":
        event["event_action"] = "resolve"
    else:
        event.update(
            event_action="trigger",
            payload=_payload(escalation),
            links=[{"href": url, "text": text} for url, text in trace_links(escalation, trace_url_template)],
            client="hotpath",
        )
    return json_request(sink.url or DEFAULT_URL, event)


def _payload(escalation: Escalation) -> dict:
    finding = escalation.finding
    summary = f"[{escalation.priority}] {finding.title} on {escalation.resource} (score {escalation.score:.0f})"
    payload = {
        "summary": truncate(summary, SUMMARY_MAX_CHARS),
        "severity": SEVERITY_BY_PRIORITY[escalation.priority],
        "source": escalation.asset.service or escalation.resource,
        "component": escalation.resource,
        "class": finding.check,
        "timestamp": escalation.event_time,
        "custom_details": {
            "priority": escalation.priority,
            "score": escalation.score,
            "state": escalation.state,
            "version": escalation.version,
            "finding_uid": escalation.finding_uid,
            "finding": finding.model_dump(),
            "reasons": escalation.reasons,
            "factors": escalation.factors,
            "evidence": escalation.evidence.model_dump(),
            "asset": escalation.asset.model_dump(),
        },
    }
    if escalation.asset.owner:
        payload["group"] = escalation.asset.owner
    return payload
