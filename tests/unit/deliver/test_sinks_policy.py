"""What the sinks do with a policy's decisions: a muted finding never pages, a route picks the receivers.

Requests are built by the sinks and sent to the real HTTP receivers of tests/support/receivers.py; the
OCSF record is checked against the schema and py-ocsf-models. Routing end to end through the delivery
service on the live broker: tests/broker/test_delivery.py.
"""

from __future__ import annotations

import json
import time

import pytest
from jsonschema import Draft202012Validator
from py_ocsf_models.events.findings.detection_finding import DetectionFinding
from receivers import (
    GENIE_KEY,
    HMAC_SECRET,
    POLICY_VERSION,
    ROUTING_KEY,
    OpsgenieReceiver,
    PagerDutyReceiver,
    WebhookReceiver,
    escalation_event,
    load_schema,
    mute,
    send,
    suppressed_event,
)
from sensitive import PAN

from stream.deliver import opsgenie, pagerduty, webhook
from stream.deliver.escalation import escalation_from_dict
from stream.deliver.ocsf import to_ocsf
from stream.deliver.routing import Secret, skip_reason
from stream.settings import SinkSettings

JAEGER = "https://jaeger.example.com/trace/{trace_id}"
ESCALATION_SCHEMA = Draft202012Validator(load_schema("escalation.schema.json"),
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
OCSF_SCHEMA = Draft202012Validator(load_schema("ocsf-detection-finding.schema.json"))


def sink(kind: str, url: str = "https://sink.example.com", name: str | None = None, **fields) -> SinkSettings:
    return SinkSettings(name=name or f"{kind}-payments", kind=kind, url=url, secret_env="SECRET", **fields)


def to_pagerduty(event: dict, receiver: PagerDutyReceiver) -> int:
    return send(pagerduty.build_request(escalation_from_dict(event), sink("pagerduty", receiver.enqueue_url),
                                        Secret(ROUTING_KEY), trace_url_template=JAEGER))


def to_opsgenie(event: dict, receiver: OpsgenieReceiver) -> list[int]:
    requests = opsgenie.build_requests(escalation_from_dict(event), sink("opsgenie", receiver.url), Secret(GENIE_KEY),
                                       trace_url_template=JAEGER)
    return [send(request) for request in requests]


# --- the event --------------------------------------------------------------------------------------------


def test_a_suppressed_event_with_its_rule_and_a_route_follows_the_escalation_schema():
    event = suppressed_event(routing={"sinks": ["payments-pd"], "opsgenie_team": "payments-oncall"})
    ESCALATION_SCHEMA.validate(event)

    read = escalation_from_dict(event)

    assert read.state == "suppressed" and read.suppressed_by.rule_id == "accept-exports-bucket"
    assert read.policy_version == read.suppressed_by.policy_version == POLICY_VERSION
    assert read.routing.sinks == ["payments-pd"]
    assert escalation_from_dict(escalation_event()).routing is None


# --- PagerDuty and Opsgenie never page a muted finding -------------------------------------------------------


def test_a_suppressed_event_resolves_the_pagerduty_alert_with_the_rule_and_never_triggers():
    escalated = escalation_event()
    key = escalated["escalation_uid"]
    with PagerDutyReceiver(ROUTING_KEY) as receiver:
        assert to_pagerduty(escalated, receiver) == 202
        assert to_pagerduty(suppressed_event(), receiver) == 202
        assert to_pagerduty(suppressed_event(), receiver) == 202, "a re-delivered suppression is refused"

        assert receiver.actions == [("trigger", key), ("resolve", key), ("resolve", key)]
        assert receiver.opened(key) == 1 and receiver.status(key) == "closed"
        summary = receiver.requests[1].json["payload"]["summary"]
        details = receiver.requests[1].json["payload"]["custom_details"]
    for shown in ("accept-exports-bucket", "payments-security", "public by design", "RISK-142", "2026-06-30"):
        assert shown in summary
    assert details["suppressed_by"] == mute() and details["policy_version"] == POLICY_VERSION


def test_a_finding_muted_from_its_first_event_never_opens_a_pagerduty_alert():
    muted = suppressed_event(version=1, priority="P1")
    with PagerDutyReceiver(ROUTING_KEY) as receiver:
        assert to_pagerduty(muted, receiver) == 202

        assert receiver.actions == [("resolve", muted["escalation_uid"])]
        assert receiver.opened(muted["escalation_uid"]) == 0


def test_a_suppressed_event_closes_the_opsgenie_alert_with_the_rule_in_the_note_and_never_creates():
    escalated = escalation_event()
    key = escalated["escalation_uid"]
    with OpsgenieReceiver(GENIE_KEY) as receiver:
        assert to_opsgenie(escalated, receiver) == [202]
        assert to_opsgenie(suppressed_event(), receiver) == [202]
        assert to_opsgenie(suppressed_event("prowler-never-paged"), receiver) == [202], "a close of no alert failed"

        creates = [request for request in receiver.requests if request.path == "/v2/alerts"]
        assert len(creates) == 1 and receiver.opened(key) == 1 and receiver.status(key) == "closed"
        note = receiver.requests[1].json["note"]
    assert receiver.requests[1].path == f"/v2/alerts/{key}/close"
    for shown in ("accept-exports-bucket", "payments-security", "public by design", "RISK-142", "2026-06-30"):
        assert shown in note


def test_a_suppression_reason_is_masked_in_every_note():
    event = suppressed_event(suppressed_by=mute(reason=f"card {PAN} in the test fixtures, accepted"))
    read = escalation_from_dict(event)

    pd = pagerduty.build_request(read, sink("pagerduty"), Secret(ROUTING_KEY), trace_url_template=JAEGER)
    (og,) = opsgenie.build_requests(read, sink("opsgenie"), Secret(GENIE_KEY), trace_url_template=JAEGER)
    hook = webhook.build_request(read, sink("webhook"), Secret(HMAC_SECRET), now=time.time())
    siem = json.dumps(to_ocsf(event))

    for sent in (pd.body.decode(), og.body.decode(), hook.body.decode(), siem):
        assert PAN not in sent and "accepted" in sent


def test_a_route_names_the_opsgenie_team_as_the_responder():
    routed = escalation_event(routing={"sinks": ["opsgenie-payments"], "opsgenie_team": "payments-oncall"})
    unrouted = escalation_event("prowler-unrouted")
    with OpsgenieReceiver(GENIE_KEY) as receiver:
        assert to_opsgenie(routed, receiver) == [202]
        assert to_opsgenie(unrouted, receiver) == [202]

        assert receiver.responders(routed["escalation_uid"]) == [{"type": "team", "name": "payments-oncall"}]
        assert receiver.responders(unrouted["escalation_uid"]) == []


# --- the webhook and the SIEM feed record the decision ------------------------------------------------------


def test_the_webhook_delivers_a_suppressed_event_signed_with_its_state_and_rule():
    event = suppressed_event()
    with WebhookReceiver(HMAC_SECRET) as receiver:
        request = webhook.build_request(escalation_from_dict(event), sink("webhook", receiver.url), Secret(HMAC_SECRET),
                                        now=time.time())
        assert send(request) == 200

        (received,) = receiver.requests
    assert received.json == event
    assert received.json["state"] == "suppressed" and received.json["suppressed_by"] == mute()


@pytest.mark.parametrize(("version", "activity_id", "rule"), [
    (1, 1, mute()),
    (3, 2, mute(ticket=None, expires=None)),
])
def test_the_siem_record_of_a_suppressed_event_has_status_suppressed_and_the_rule(version, activity_id, rule):
    event = suppressed_event(version=version, suppressed_by=rule)

    ocsf = to_ocsf(event)

    OCSF_SCHEMA.validate(ocsf)
    assert DetectionFinding.model_validate(ocsf).model_dump(mode="json", exclude_none=True) == ocsf
    assert (ocsf["status_id"], ocsf["status"]) == (3, "Suppressed")
    assert ocsf["activity_id"] == activity_id and ocsf["type_uid"] == 200400 + activity_id
    assert ocsf["unmapped"]["hotpath"]["suppressed_by"] == rule
    assert ocsf["unmapped"]["hotpath"]["policy_version"] == POLICY_VERSION
    assert "accept-exports-bucket" in ocsf["comment"] and "payments-security" in ocsf["comment"]


def test_the_siem_record_after_a_suppression_ends_is_open_again_and_says_why():
    event = escalation_event(state="updated", version=4, policy_version=POLICY_VERSION,
                             suppression_ended={"rule_id": "accept-exports-bucket", "why": "expired"})

    ocsf = to_ocsf(event)

    OCSF_SCHEMA.validate(ocsf)
    assert ocsf["status_id"] == 1 and "comment" not in ocsf
    assert ocsf["unmapped"]["hotpath"]["suppression_ended"] == {"rule_id": "accept-exports-bucket", "why": "expired"}


# --- routing: one pure decision for every lane -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["pagerduty", "opsgenie", "webhook"])
def test_a_route_sends_an_event_only_to_the_sinks_it_names(kind):
    named, other = sink(kind, name="payments-pager"), sink(kind, name="platform-pager")
    routed = escalation_from_dict(escalation_event(routing={"sinks": ["payments-pager"], "opsgenie_team": None}))

    assert skip_reason(named, routed) is None
    assert skip_reason(other, routed) == "not_routed"
    assert skip_reason(other, escalation_from_dict(escalation_event())) is None, "without a route every sink takes it"


def test_a_route_does_not_lift_a_sinks_own_threshold_or_team():
    route = {"sinks": ["payments-pager"], "opsgenie_team": None}
    picky = sink("pagerduty", name="payments-pager", min_priority="P2", match_owner="payments")

    assert skip_reason(picky, escalation_from_dict(escalation_event(priority="P4", routing=route))) == \
        "below_min_priority"
    assert skip_reason(picky, escalation_from_dict(escalation_event(owner="search", routing=route))) == \
        "owner_mismatch"


def test_a_suppression_reaches_a_sink_whatever_its_priority_and_route_as_a_resolve_does():
    paging = sink("pagerduty", min_priority="P2", match_owner="payments")
    elsewhere = {"sinks": ["platform-pager"], "opsgenie_team": None}

    assert skip_reason(paging, escalation_from_dict(escalation_event(priority="P4"))) == "below_min_priority"
    assert skip_reason(paging, escalation_from_dict(escalation_event(routing=elsewhere))) == "not_routed"
    assert skip_reason(paging, escalation_from_dict(suppressed_event(priority="P4"))) is None
    assert skip_reason(paging, escalation_from_dict(suppressed_event(owner="search"))) == "owner_mismatch"
    # the route may have changed since this sink paged: the incident it opened must still close
    assert skip_reason(paging, escalation_from_dict(suppressed_event(routing=elsewhere))) is None
    assert skip_reason(paging, escalation_from_dict(escalation_event(state="resolved", routing=elsewhere))) is None
