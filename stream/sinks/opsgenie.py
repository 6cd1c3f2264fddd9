"""Opsgenie Alert API: create on escalated and updated, close on resolved, ``alias`` = dedup key.

Opsgenie de-duplicates creates on the alias of an open alert (it counts them instead of notifying
again), so a retried or re-delivered create never pages twice; close addresses the alert by alias
(``POST /v2/alerts/{alias}/close?identifierType=alias``). An ``updated`` event is a create on the
open alert: Opsgenie keeps the alert's first priority and records the update in its count and
details. Requests are processed asynchronously: 202 means accepted; 401, 403 and 422 are permanent.
The base URL defaults to the US instance; EU accounts set ``url`` to ``https://api.eu.opsgenie.com``.
"""

from __future__ import annotations

from urllib.parse import quote

from stream.settings import SinkSettings
from stream.sinks.escalation import Escalation, trace_links
from stream.sinks.http import HttpRequest, classify_response, json_request, truncate
from stream.sinks.routing import Secret

DEFAULT_URL = "https://api.opsgenie.com"
MESSAGE_MAX_CHARS = 130
DESCRIPTION_MAX_CHARS = 15000
ENTITY_MAX_CHARS = 512
SOURCE = "hotpath"

classify = classify_response


def build_request(escalation: Escalation, sink: SinkSettings, secret: Secret, *, trace_url_template: str) -> HttpRequest:
    """The Alert API request for one escalation event."""
    base = (sink.url or DEFAULT_URL).rstrip("/")
    headers = {"Authorization": f"GenieKey {secret.reveal()}"}
    if escalation.state == "resolved":
        url = f"{base}/v2/alerts/{quote(escalation.dedup_key, safe='')}/close?identifierType=alias"
        note = f"Resolved by hotpath (version {escalation.version}): " + "; ".join(escalation.reasons)
        return json_request(url, {"source": SOURCE, "note": truncate(note, DESCRIPTION_MAX_CHARS)}, headers)
    return json_request(f"{base}/v2/alerts", _alert(escalation, trace_url_template), headers)


def _alert(escalation: Escalation, trace_url_template: str) -> dict:
    finding = escalation.finding
    asset = escalation.asset
    links = trace_links(escalation, trace_url_template)
    description = "\n".join([*escalation.reasons, "", *(f"{text}: {url}" for url, text in links)])
    details = {
        "score": f"{escalation.score:g}",
        "state": escalation.state,
        "version": str(escalation.version),
        "finding_uid": escalation.finding_uid,
        "check": finding.check,
        "finding_severity": finding.severity,
        "resource": escalation.resource,
        "account": finding.account or "",
        "region": finding.region or "",
        "alert_uids": ", ".join(escalation.evidence.alert_uids),
        **{f"trace_{index}": url for index, (url, _) in enumerate(links, start=1)},
    }
    tags = [f"priority:{escalation.priority}", f"check:{finding.check}"]
    tags += [f"{name}:{value}" for name, value in (("owner", asset.owner), ("environment", asset.environment)) if value]
    return {
        "message": truncate(f"[{escalation.priority}] {finding.title}", MESSAGE_MAX_CHARS),
        "alias": escalation.dedup_key,
        "description": truncate(description, DESCRIPTION_MAX_CHARS),
        "priority": escalation.priority,
        "entity": truncate(escalation.resource, ENTITY_MAX_CHARS),
        "source": SOURCE,
        "tags": tags,
        "details": {key: value for key, value in details.items() if value},
    }
