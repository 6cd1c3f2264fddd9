"""Opsgenie Alert API: create on escalated and updated, close on resolved and suppressed, ``alias`` = dedup key.

Opsgenie de-duplicates creates on the alias of an open alert (it counts them instead of notifying
again), so a retried or re-delivered create never pages twice; close addresses the alert by alias
(``POST /v2/alerts/{alias}/close?identifierType=alias``). Requests are processed asynchronously:
202 means accepted; 401, 403 and 422 are permanent. The base URL defaults to the US instance; EU
accounts set ``url`` to ``https://api.eu.opsgenie.com``.

A priority change (an ``updated`` event) is two requests, in order (:func:`build_requests`): the
create, which opens the alert at its new priority if none is open (the sink may never have been
sent the first, lower priority), and otherwise only counts; then ``PUT
/v2/alerts/{alias}/priority?identifierType=alias``, which sets the open alert's priority, since a
de-duplicated create leaves it as it was. Both are idempotent, so re-sending both is safe.

A suppressed event (a policy muted the finding) never creates: it closes the finding's alert with
the suppression (rule, owner, reason, ticket, expiry) as the close's note. When a policy route names
an Opsgenie team (``routing.opsgenie_team``), the create names it as the alert's responder.

Every field stays within the Alert API's documented limits: message 130 characters, alias 512,
description 15000, tags 20 of at most 50 characters, details 8000 characters in all (keys and
values), entity 512, source 100, note 25000, priority P1 to P5. The details name the controls the
finding fails (``compliance``, one line per framework) and the fix its source advises
(``remediation``: the description and the first reference).
"""

from __future__ import annotations

from urllib.parse import quote

from stream.deliver.escalation import Escalation, compliance_lines, remediation_text, suppression_note, trace_links
from stream.deliver.http import HttpRequest, classify_response, json_request
from stream.deliver.routing import CLOSING_STATES, Secret
from stream.deliver.sink import SinkKind
from stream.redact import truncate
from stream.settings import SinkSettings

DEFAULT_URL = "https://api.opsgenie.com"
MESSAGE_MAX_CHARS = 130
ALIAS_MAX_CHARS = 512
DESCRIPTION_MAX_CHARS = 15000
ENTITY_MAX_CHARS = 512
NOTE_MAX_CHARS = 25000
TAG_MAX_CHARS = 50
TAGS_MAX = 20
DETAILS_MAX_CHARS = 8000
SOURCE = "hotpath"

classify = classify_response


def build_requests(escalation: Escalation, sink: SinkSettings, secret: Secret, *,
                   trace_url_template: str) -> list[HttpRequest]:
    """The Alert API requests for one escalation event, to be sent in this order."""
    base = (sink.url or DEFAULT_URL).rstrip("/")
    headers = {"Authorization": f"GenieKey {secret.reveal()}"}
    alert_url = f"{base}/v2/alerts/{quote(truncate(escalation.dedup_key, ALIAS_MAX_CHARS), safe='')}"
    if escalation.state in CLOSING_STATES:
        close = {"source": SOURCE, "note": truncate(_close_note(escalation), NOTE_MAX_CHARS)}
        return [json_request(f"{alert_url}/close?identifierType=alias", close, headers)]
    create = json_request(f"{base}/v2/alerts", _alert(escalation, trace_url_template), headers)
    if escalation.state == "escalated":
        return [create]
    priority = {"priority": escalation.priority}
    return [create, json_request(f"{alert_url}/priority?identifierType=alias", priority, headers, method="PUT")]


def _close_note(escalation: Escalation) -> str:
    if escalation.state == "suppressed":
        return suppression_note(escalation)
    return f"Resolved by hotpath (version {escalation.version}): " + "; ".join(escalation.reasons)


def _alert(escalation: Escalation, trace_url_template: str) -> dict:
    finding = escalation.finding
    asset = escalation.asset
    links = trace_links(escalation, trace_url_template)
    description = "\n".join([*escalation.reasons, "", *(f"{text}: {url}" for url, text in links)])
    details = {
        "score": f"{escalation.score:g}",
        "state": escalation.state,
        "version": str(escalation.version),
        "previous_priority": escalation.previous_priority or "",
        "finding_uid": escalation.finding_uid,
        "check": finding.check,
        "finding_severity": finding.severity,
        "resource": escalation.resource,
        "account": finding.account or "",
        "region": finding.region or "",
        "alert_uids": ", ".join(escalation.evidence.alert_uids),
        "compliance": "\n".join(compliance_lines(escalation)),
        "remediation": remediation_text(escalation) or "",
        **{f"trace_{index}": url for index, (url, _) in enumerate(links, start=1)},
    }
    tags = [f"priority:{escalation.priority}", f"check:{finding.check}"]
    tags += [f"{name}:{value}" for name, value in (("owner", asset.owner), ("environment", asset.environment)) if value]
    alert = {
        "message": truncate(f"[{escalation.priority}] {finding.title}", MESSAGE_MAX_CHARS),
        "alias": truncate(escalation.dedup_key, ALIAS_MAX_CHARS),
        "description": truncate(description, DESCRIPTION_MAX_CHARS),
        "priority": escalation.priority,
        "entity": truncate(escalation.resource, ENTITY_MAX_CHARS),
        "source": SOURCE,
        "tags": [truncate(tag, TAG_MAX_CHARS) for tag in tags[:TAGS_MAX]],
        "details": within_total({key: value for key, value in details.items() if value}, DETAILS_MAX_CHARS),
    }
    team = escalation.routing.opsgenie_team if escalation.routing else None
    if team:
        alert["responders"] = [{"type": "team", "name": team}]
    return alert


def within_total(details: dict[str, str], max_chars: int) -> dict[str, str]:
    """``details`` with each value cut to an equal share of ``max_chars`` (keys and values count)."""
    if not details:
        return details
    share = max_chars // len(details)
    return {key: truncate(value, max(share - len(key), 3)) for key, value in details.items()}


def event_requests(escalation: Escalation, sink: SinkSettings, secret: Secret, *, now: float,
                   trace_url_template: str) -> list[HttpRequest]:
    """The registry's builder: :func:`build_requests`, the same whenever they are sent."""
    return build_requests(escalation, sink, secret, trace_url_template=trace_url_template)


SINK = SinkKind("opsgenie", event_requests, classify, default_url=DEFAULT_URL)
