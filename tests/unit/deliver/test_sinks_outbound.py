"""What each sink sends: masked, within each API's documented limits, never redirected, priority changes shown.

Requests are built by the sinks and sent to the real HTTP receivers of tests/support/receivers.py, which
answer as PagerDuty, Opsgenie and a signed-webhook consumer do (Opsgenie's refuses what breaks its
documented limits with a 422, as the service does). Redirects and echoed secrets through the delivery
service on the live broker: tests/broker/test_sinks_dead_letter_reasons.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import orjson
import pytest
from engine_harness import BUCKET, Harness, at, touch
from inputs import POD, falco_event, guardduty, needs_samples, sample
from jsonschema import Draft202012Validator
from paths import ROOT
from receivers import (
    GENIE_KEY,
    HMAC_SECRET,
    ROUTING_KEY,
    OpsgenieReceiver,
    PagerDutyReceiver,
    WebhookReceiver,
    escalation_event,
    load_schema,
    send,
)
from receivers import Receiver as AnyReceiver
from sensitive import API_TOKEN, JWT, PAN, PAN_SPACED

from stream.deliver import ocsf, opsgenie, pagerduty, webhook
from stream.deliver.escalation import escalation_from_dict, masked_event
from stream.deliver.http import HttpRequest, Permanent, classify_response
from stream.deliver.ocsf import RECORD_MAX_BYTES, to_ocsf
from stream.deliver.routing import Secret
from stream.ingest.formats.alerts import decode_alerts
from stream.ingest.formats.findings import decode_findings
from stream.settings import ConfigError, Settings, SinkSettings, load_settings

JAEGER = "https://jaeger.example.com/trace/{trace_id}"
SENSITIVE = [PAN, PAN_SPACED, JWT, API_TOKEN]
OCSF_SCHEMA = Draft202012Validator(load_schema("ocsf-detection-finding.schema.json"))
WAIT_S = 60.0


def sink(kind: str, url: str) -> SinkSettings:
    return SinkSettings(name=f"{kind}-payments", kind=kind, url=url, secret_env="SECRET")


def requests_of(event: dict, receivers: dict[str, AnyReceiver]) -> dict[str, list[HttpRequest]]:
    """What each sink sends for ``event``, to the given receivers."""
    escalation = escalation_from_dict(event)
    pd, og, hook = receivers["pagerduty"], receivers["opsgenie"], receivers["webhook"]
    return {
        "pagerduty": [pagerduty.build_request(escalation, sink("pagerduty", pd.enqueue_url), Secret(ROUTING_KEY),
                                              trace_url_template=JAEGER)],
        "opsgenie": opsgenie.build_requests(escalation, sink("opsgenie", og.url), Secret(GENIE_KEY),
                                            trace_url_template=JAEGER),
        "webhook": [webhook.build_request(escalation, sink("webhook", hook.url), Secret(HMAC_SECRET), now=time.time())],
    }


class Receivers:
    """The three real receivers, running for the block."""

    def __enter__(self) -> dict[str, AnyReceiver]:
        self.all = {"pagerduty": PagerDutyReceiver(ROUTING_KEY), "opsgenie": OpsgenieReceiver(GENIE_KEY),
                    "webhook": WebhookReceiver(HMAC_SECRET)}
        for receiver in self.all.values():
            receiver.__enter__()
        return self.all

    def __exit__(self, *exc: object) -> None:
        for receiver in self.all.values():
            receiver.__exit__(*exc)


def digits_only(text: str) -> str:
    return re.sub(r"\D", "", text)


def leaks(text: str) -> list[str]:
    return [value for value in SENSITIVE if value in text or digits_only(value) in digits_only(text)]


# --- masking --------------------------------------------------------------------------------------------


def sensitive_event(**changes) -> dict:
    """An escalation whose every sender-chosen text holds a card number or a credential, as each input
    format can put there: a Prowler or ASFF finding's uid, title, check id and resources; Falco's rule,
    output and uuid and GuardDuty's title (in the reasons and the alert uids); asset names."""
    event = escalation_event(f"prowler-aws-s3_bucket_public_access-123456789012-eu-west-1-cards-{PAN}",
                             resource=f"arn:aws:s3:::cards-{PAN}", owner=f"team-{PAN}",
                             environment=f"prod password={API_TOKEN}",
                             alert_uids=[f"falco-{PAN_SPACED}-uuid", f"gd-{JWT}"], **changes)
    event["finding"].update(check=f"s3_bucket_{PAN}", title=f"Bucket of card {PAN_SPACED} is public, token={API_TOKEN}",
                            resources=[event["resource"], f"arn:aws:s3:::cards-{PAN}-copy"],
                            account=f"1234 {PAN}", region=f"eu-west-1 {JWT}")
    event["factors"]["exposure_path"] = [f"service:edge-{PAN}", "service:payments-api"]
    event["factors"]["contributions"][f"card {PAN}"] = 1.0
    event["reasons"] = [f"Falco: Terminal shell in container (output: card {PAN_SPACED}) on pod",
                        f"GuardDuty: Exfiltration:S3/AnomalousBehavior by Bearer {API_TOKEN}"]
    event["asset"]["service"] = f"payments-{PAN}"
    return event


def test_no_sink_and_no_siem_record_carries_a_card_number_or_a_credential():
    event = sensitive_event()
    updated = sensitive_event(state="updated", version=2, priority="P1")
    resolved = sensitive_event(state="resolved", version=3)

    with Receivers() as receivers:
        statuses = [send(request) for each in (event, updated, resolved)
                    for requests in requests_of(each, receivers).values() for request in requests]
        received = [(request.path, str(request.query), {name: value for name, value in request.headers.items()
                                                         if name != "Authorization"}, request.body.decode())
                    for receiver in receivers.values() for request in receiver.requests]

    assert all(200 <= status < 300 for status in statuses), statuses
    assert len(received) == len(statuses) == 10
    assert leaks(json.dumps(received)) == []
    siem = [to_ocsf(each) for each in (event, updated, resolved)]
    for record in siem:
        OCSF_SCHEMA.validate(record)
    assert leaks(json.dumps(siem)) == []
    assert "Bucket of card **** **** **** 0004 is public, token=[masked]" in siem[0]["finding_info"]["title"]


def input_records(resolver) -> list:
    """A card number or a token in every free text of each input format, on one exercised bucket:
    a Prowler finding (uid, title, description, check id), a Security Hub ASFF finding (Id, Title,
    Description), a Falco alert (rule, output, uuid) on the service calling the bucket and a
    GuardDuty alert (title, type, id, user) on the bucket."""
    prowler = sample("prowler-ocsf/example_output_aws.ocsf.json")[0]
    prowler["finding_info"].update(uid=f"prowler-{PAN}", title=f"Bucket of card {PAN_SPACED}",
                                   desc=f"token={API_TOKEN} {PAN}")
    prowler["metadata"]["event_code"] = f"s3_bucket_{PAN}"
    prowler["resources"][0].update(uid=BUCKET, name="acme-statements")
    asff = sample("aws-securityhub-asff/asff_afsbp-s3.8.json")
    asff.update(Id=f"arn:aws:securityhub:eu-west-1:111122223333:finding/{PAN}", Title=f"Card {PAN_SPACED} bucket",
                Description=f"Authorization: Bearer {API_TOKEN}")
    asff["Resources"][0]["Id"] = BUCKET
    falco = falco_event(rule=f"Shell by card {PAN}", output=f"shell {JWT}", uuid=f"falco-{PAN_SPACED}")
    duty = guardduty("detail_guardduty_s3_event.json")
    duty.update(id=f"gd-{PAN}", arn=f"arn:aws:guardduty:eu-west-1:1:finding/{PAN}", type=f"PenTest:S3/{PAN}",
                title=f"Card {PAN_SPACED} read")
    duty["resource"]["s3BucketDetails"][0].update(arn=BUCKET, name="acme-statements")
    duty["resource"]["accessKeyDetails"]["userName"] = f"user-{PAN}"
    return [*decode_findings(orjson.dumps(prowler)), *decode_findings(orjson.dumps(asff)),
            *decode_alerts(orjson.dumps(falco), resolver), *decode_alerts(orjson.dumps(duty), resolver)]


@needs_samples
def test_no_text_from_any_input_format_reaches_a_sink_or_the_siem_unmasked():
    harness = Harness()
    harness.context.resolver.learn_pod(POD, "service:payments-api")
    records = input_records(harness.context.resolver)
    for finding in (record for record in records if record.kind == "finding"):
        harness.feed(harness.router.finding(finding.model_copy(update={"observed_at": at(0)})))
    harness.traces(touch(BUCKET, ["service:payments-api"], 10, internet=5))
    for alert in (record for record in records if record.kind == "alert"):
        harness.feed(harness.router.alert(alert.model_copy(update={"observed_at": at(20)})))
    harness.tick()
    events = harness.out
    assert {event["finding"]["source"] for event in events} == {"prowler", "securityhub"}
    assert leaks(json.dumps(events)), "the correlator's events carry the senders' texts as they came"

    with Receivers() as receivers:
        statuses = [send(request) for event in events
                    for requests in requests_of(event, receivers).values() for request in requests]
        received = [(request.path, request.body.decode()) for receiver in receivers.values()
                    for request in receiver.requests]

    assert statuses and all(200 <= status < 300 for status in statuses)
    assert leaks(json.dumps(received)) == []
    assert leaks(json.dumps([to_ocsf(event) for event in events])) == []
    assert leaks(json.dumps([masked_event(event) for event in events])) == []


def test_masking_is_idempotent_and_keeps_ids_stable():
    event = sensitive_event()

    once = masked_event(event)

    assert masked_event(once) == once
    assert masked_event(sensitive_event()) == once  # the same finding always masks to the same uid
    assert once["finding_uid"].endswith("cards-************1111") and leaks(json.dumps(once)) == []
    assert once["escalation_uid"] == event["escalation_uid"]  # the dedup key is not touched
    assert once["evidence"]["trace_ids"] == event["evidence"]["trace_ids"]
    assert escalation_from_dict(event).finding_uid == escalation_from_dict(once).finding_uid == once["finding_uid"]


def test_an_id_made_of_digits_is_never_masked_into_an_invalid_one():
    # hex digests can hold a Luhn-valid run of decimal digits: masking one would break the id
    event = escalation_event(trace_ids=["4111111111111111" + "0" * 16])
    event["escalation_uid"] = "hp-" + "4111111111111111" + "a" * 16

    parsed = escalation_from_dict(event)

    assert parsed.evidence.trace_ids == ["4111111111111111" + "0" * 16]
    assert parsed.escalation_uid == event["escalation_uid"]


# --- each API's limits ----------------------------------------------------------------------------------


def hostile_event(filler: str) -> dict:
    """2 KB in every text of an updated escalation and 100 items in every list."""
    text = (filler * 2048)[:2048]
    event = escalation_event(f"uid-{text}", state="updated", version=2, priority="P1", owner=text, environment=text,
                             trace_ids=["4bf92f3577b34da6a3ce929d0e0e4736"] * 100, alert_uids=[text] * 100,
                             resource=f"arn:aws:s3:::{text}")
    event["previous_priority"] = "P3"
    event["finding"].update(check=text, title=text, resources=[f"arn:aws:s3:::{n}{text}" for n in range(100)],
                            account=text, region=text)
    event["factors"].update(exposure_path=[text] * 100, criticality=text,
                            contributions={f"{n}{text}": 1.0 for n in range(100)})
    event["reasons"] = [text] * 100
    event["asset"]["service"] = text
    return event


FILLERS = pytest.mark.parametrize("filler", ["x", "\u0001\"\\é"], ids=["ascii", "escaped"])


@FILLERS
def test_pagerduty_events_stay_within_the_events_api_limits(filler):
    with PagerDutyReceiver(ROUTING_KEY) as receiver:
        for state in ("updated", "resolved"):
            event = hostile_event(filler) | {"state": state}
            request = pagerduty.build_request(escalation_from_dict(event), sink("pagerduty", receiver.enqueue_url),
                                              Secret(ROUTING_KEY), trace_url_template=JAEGER)

            assert send(request) == 202
            sent = json.loads(request.body)
            assert len(request.body) <= pagerduty.EVENT_MAX_BYTES  # 512 KB
            assert len(sent["dedup_key"]) <= 255
    payload = receiver.requests[0].json["payload"]
    assert len(payload["summary"]) <= 1024
    assert all(len(payload[name]) <= pagerduty.FIELD_MAX_CHARS for name in ("source", "component", "group", "class"))


@FILLERS
def test_opsgenie_requests_stay_within_the_alert_api_limits(filler):
    with OpsgenieReceiver(GENIE_KEY) as receiver:
        target = sink("opsgenie", receiver.url)
        event = hostile_event(filler)
        for state in ("updated", "resolved"):
            for request in opsgenie.build_requests(escalation_from_dict(event | {"state": state}), target,
                                                   Secret(GENIE_KEY), trace_url_template=JAEGER):
                assert send(request) == 202, request.url

        create, priority, close = (request.json for request in receiver.requests)
    assert len(create["message"]) <= 130 and len(create["alias"]) <= 512 and len(create["entity"]) <= 512
    assert len(create["description"]) <= 15000 and len(create["source"]) <= 100
    assert 0 < len(create["tags"]) <= 20 and all(len(tag) <= 50 for tag in create["tags"])
    assert sum(len(key) + len(value) for key, value in create["details"].items()) <= 8000
    assert create["priority"] == priority["priority"] == "P1"
    assert len(close["note"]) <= 25000
    assert receiver.opened(event["escalation_uid"]) == 1


def test_a_long_prowler_check_id_still_pages_on_opsgenie():
    event = escalation_event()
    event["finding"]["check"] = "apigatewayv2_api_access_logging_enabled_and_authorizers_configured_for_every_route"

    with OpsgenieReceiver(GENIE_KEY) as receiver:
        statuses = [send(request) for request in opsgenie.build_requests(
            escalation_from_dict(event), sink("opsgenie", receiver.url), Secret(GENIE_KEY), trace_url_template=JAEGER)]

        assert statuses == [202] and receiver.opened(event["escalation_uid"]) == 1
    assert "check:apigatewayv2_api_access_logging_enabled_a..." in receiver.requests[0].json["tags"]


@FILLERS
def test_webhook_bodies_stay_within_the_documented_limit(filler):
    with WebhookReceiver(HMAC_SECRET) as receiver:
        request = webhook.build_request(escalation_from_dict(hostile_event(filler)), sink("webhook", receiver.url),
                                        Secret(HMAC_SECRET), now=time.time())

        assert send(request) == 200  # the signature still verifies
    assert len(request.body) <= webhook.BODY_MAX_BYTES
    body = json.loads(request.body)
    assert len(body["finding"]["title"]) <= 1024 and len(body["reasons"]) <= 20


@FILLERS
def test_the_siem_record_stays_within_its_schema_and_the_topic_message_size(filler):
    record = to_ocsf(hostile_event(filler))

    OCSF_SCHEMA.validate(record)
    assert len(orjson.dumps(record)) <= RECORD_MAX_BYTES


# --- priority changes -----------------------------------------------------------------------------------


def test_a_priority_upgrade_reaches_opsgenie_whether_or_not_it_has_the_alert():
    first = escalation_event(priority="P3")
    upgrade = escalation_event(state="updated", version=2, priority="P1") | {"previous_priority": "P3"}
    other = escalation_event("prowler-finding-first-seen-at-p1", state="updated", version=2, priority="P1")

    with OpsgenieReceiver(GENIE_KEY) as receiver:
        target = sink("opsgenie", receiver.url)
        for event in (first, upgrade, other):  # the sink was never sent ``other`` at its first, lower priority
            for request in opsgenie.build_requests(escalation_from_dict(event), target, Secret(GENIE_KEY),
                                                   trace_url_template=JAEGER):
                assert send(request) == 202

        assert receiver.opened(first["escalation_uid"]) == 1 and receiver.priority(first["escalation_uid"]) == "P1"
        assert receiver.opened(other["escalation_uid"]) == 1 and receiver.priority(other["escalation_uid"]) == "P1"
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in receiver.requests[1:3]] == [("POST", "alerts"),
                                                                                       ("PUT", "priority")]


def test_pagerduty_and_the_webhook_show_the_new_priority_and_the_previous_one():
    upgrade = escalation_event(state="updated", version=2, priority="P1") | {"previous_priority": "P3"}
    with PagerDutyReceiver(ROUTING_KEY) as pd, WebhookReceiver(HMAC_SECRET) as hook:
        for event in (escalation_event(priority="P3"), upgrade):
            escalation = escalation_from_dict(event)
            assert send(pagerduty.build_request(escalation, sink("pagerduty", pd.enqueue_url), Secret(ROUTING_KEY),
                                                trace_url_template=JAEGER)) == 202
            assert send(webhook.build_request(escalation, sink("webhook", hook.url), Secret(HMAC_SECRET),
                                              now=time.time())) == 200

        key = upgrade["escalation_uid"]
        assert pd.opened(key) == 1 and hook.opened(key) == 1
        trigger = pd.alerts[key].events[-1]["payload"]
        hooked = hook.alerts[key].events[-1]
    assert trigger["severity"] == "critical" and trigger["summary"].startswith("[P1, was P3] ")
    assert trigger["custom_details"]["previous_priority"] == "P3"
    assert (hooked["priority"], hooked["previous_priority"]) == ("P1", "P3")
    assert to_ocsf(upgrade)["unmapped"]["hotpath"]["previous_priority"] == "P3"


# --- redirects and plain http ---------------------------------------------------------------------------


def test_a_redirect_is_a_permanent_failure_that_says_redirects_are_not_followed():
    outcome = classify_response(307, {"Location": "https://elsewhere.example.com/"}, b"", 0.0)

    assert isinstance(outcome, Permanent)
    assert outcome.reason.startswith("HTTP 307: ") and "redirects are not followed" in outcome.reason


@pytest.mark.parametrize("url", ["http://hooks.example.com/in", "ftp://hooks.example.com/in", "hooks.example.com/in"])
def test_a_sink_without_https_is_refused_at_start_up_without_showing_its_secrets(url):
    secret_url = url.replace("hooks.example.com", "admin:hunter2@hooks.example.com") + "?token=abc123"
    sinks = [{"name": "soc", "kind": "webhook", "url": secret_url, "secret_env": "HOOK"}]

    with pytest.raises(ConfigError, match="sink 'soc': url") as refused:
        load_settings(sinks=sinks)

    message = str(refused.value)
    assert "\n" not in message and "hunter2" not in message and "abc123" not in message


def test_plain_http_goes_to_loopback_always_and_elsewhere_only_when_allowed():
    def settings(url: str, **changes) -> Settings:
        return load_settings(sinks=[{"name": "soc", "kind": "webhook", "url": url, "secret_env": "HOOK"}], **changes)

    assert settings("http://127.0.0.1:8080/in").sinks[0].url == "http://127.0.0.1:8080/in"
    assert settings("http://localhost:8080/in") and settings("http://[::1]:8080/in")
    assert settings("http://hooks.internal/in", allow_plain_http=True).allow_plain_http
    with pytest.raises(ConfigError, match="HOTPATH_ALLOW_PLAIN_HTTP"):
        settings("http://hooks.internal/in")


def test_deliver_refuses_a_plain_http_sink_with_one_line():
    env = {key: value for key, value in os.environ.items() if not key.startswith("HOTPATH_")}
    env["HOTPATH_SINKS"] = json.dumps([{"name": "soc", "kind": "webhook", "url": "http://u:p4ss@soar.example.com/x",
                                        "secret_env": "HOOK"}])

    done = subprocess.run([sys.executable, "-m", "stream.commands.main", "deliver"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=WAIT_S)

    assert done.returncode == 2 and "Traceback" not in done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and "sink 'soc'" in line and "http://soar.example.com must use https" in line
    assert "p4ss" not in line


def test_a_siem_record_too_large_for_the_topic_is_refused_with_a_reason(monkeypatch):
    monkeypatch.setattr(ocsf, "RECORD_MAX_BYTES", 100_000)

    with pytest.raises(ValueError,
                       match=r"the OCSF finding takes \d+ bytes, more than the 100000 the SIEM topic takes"):
        ocsf.to_ocsf(hostile_event("x"))


def test_an_answer_read_only_in_part_cannot_leave_the_start_of_the_secret_in_a_reason():
    # the delivery reads at most 64 KiB of an answer: an echo of the request can stop inside the key
    secret = Secret(ROUTING_KEY)

    assert secret.redact(f"HTTP 400: request was {{\"echo\": \"{ROUTING_KEY[:20]}") == \
        'HTTP 400: request was {"echo": "***'
    assert secret.redact(f"{ROUTING_KEY} and {ROUTING_KEY}, card {PAN}") == "*** and ***, card ************1111"
