"""PagerDuty, Opsgenie and signed-webhook requests, how answers are classified, routing, and secrets."""

from __future__ import annotations

import json
import pickle
import time
import urllib.error
import urllib.request
from email.utils import formatdate
from pathlib import Path

import pytest
from receivers import OpsgenieReceiver, PagerDutyReceiver, WebhookReceiver, escalation_event, with_compliance

from stream.deliver import opsgenie, pagerduty, webhook
from stream.deliver.escalation import escalation_from_dict
from stream.deliver.http import Accepted, HttpRequest, Permanent, Retry, classify_response
from stream.deliver.registry import check_sinks, sink_clients
from stream.deliver.routing import Secret, load_secret, skip_reason
from stream.settings import ConfigError, SinkSettings, load_settings

ROUTING_KEY = "R0UT1NGK3Y0123456789abcdefabcdef"
GENIE_KEY = "eb243592-faa2-4ba2-a551-1afdf565c889"
HMAC_SECRET = "whsec-3a9c1f0e7d"
JAEGER = "https://jaeger.example.com/trace/{trace_id}"
TEMPO = "https://grafana.example.com/explore?left=%7B%22queries%22:%5B%7B%22query%22:%22{trace_id}%22%7D%5D%7D"
NOW = 1_741_943_700.0


XRAY = "https://console.aws.amazon.com/xray/home?region=eu-west-1#/traces/{xray_trace_id}"
COMPLIANCE = {"CIS-2.0": ["2.1.5", "2.1.4"], "PCI DSS v4.0.1": ["1.3.1"]}
REMEDIATION = {"description": "Turn on S3 Block Public Access for the bucket.",
               "references": ["https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html",
                              "https://docs.prowler.com/checks/aws/s3"]}
# As much as an escalation can carry: 20 frameworks of 20 controls, every text at the event's 1024-character cut.
MOST_COMPLIANCE = {f"framework-{i:02}-" + "f" * 1010: [f"control-{j:02}-" + "c" * 1010 for j in range(20)]
                   for i in range(20)}


def escalation(**changes):
    return escalation_from_dict(escalation_event(**changes))


def failing(compliance: dict, remediation: dict | None = None):
    """An escalation whose finding fails ``compliance``, with the source's ``remediation``."""
    return escalation_from_dict(with_compliance(escalation_event(), compliance, remediation))


def sink(kind: str, **fields) -> SinkSettings:
    return SinkSettings(name=f"{kind}-payments", kind=kind, secret_env="SECRET", **fields)


def send(request: HttpRequest) -> tuple[int, dict]:
    """POST a built request to a receiver as any HTTP client would."""
    method, url, headers, body = request
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers, method=method), timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# --- PagerDuty ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("priority", "severity"), [("P1", "critical"), ("P2", "error"), ("P3", "warning"),
                                                    ("P4", "info"), ("P5", "info")])
def test_pagerduty_trigger(priority, severity):
    event = escalation(priority=priority)

    method, url, headers, body = pagerduty.build_request(event, sink("pagerduty"), Secret(ROUTING_KEY),
                                                         trace_url_template=JAEGER)

    sent = json.loads(body)
    assert (method, url, headers["Content-Type"]) == ("POST", pagerduty.DEFAULT_URL, "application/json")
    assert sent["routing_key"] == ROUTING_KEY and sent["event_action"] == "trigger"
    assert sent["dedup_key"] == event.escalation_uid
    payload = sent["payload"]
    assert payload["severity"] == severity
    assert payload["component"] == "arn:aws:s3:::payments-exports"
    assert payload["source"] == "payments-api"
    assert payload["summary"].startswith(f"[{priority}] Ensure there are no S3 buckets open")
    details = payload["custom_details"]
    assert details["factors"]["span_count"] == 412 and details["reasons"] == event.reasons
    assert details["evidence"]["alert_uids"] == ["f8a7c6d2-5b1e-4c3a-9d2f-1e0b7a6c5d4e"]
    assert sent["links"] == [
        {"href": "https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736",
         "text": "Trace 4bf92f3577b34da6a3ce929d0e0e4736"},
        {"href": "https://jaeger.example.com/trace/0af7651916cd43dd8448eb211c80319c",
         "text": "Trace 0af7651916cd43dd8448eb211c80319c"},
    ]


def test_pagerduty_links_follow_any_trace_ui_template():
    _, _, _, body = pagerduty.build_request(escalation(trace_ids=["4bf92f3577b34da6a3ce929d0e0e4736"]),
                                            sink("pagerduty"), Secret(ROUTING_KEY), trace_url_template=TEMPO)

    assert json.loads(body)["links"][0]["href"] == TEMPO.replace("{trace_id}", "4bf92f3577b34da6a3ce929d0e0e4736")


def test_pagerduty_details_name_each_failing_framework_and_the_fix():
    _, _, _, body = pagerduty.build_request(failing(COMPLIANCE, REMEDIATION), sink("pagerduty"), Secret(ROUTING_KEY),
                                            trace_url_template=XRAY)

    sent = json.loads(body)
    details = sent["payload"]["custom_details"]
    assert details["compliance"] == ["CIS-2.0: 2.1.5, 2.1.4", "PCI DSS v4.0.1: 1.3.1"]
    assert details["remediation"] == ("Turn on S3 Block Public Access for the bucket.\n"
                                      "https://docs.aws.amazon.com/AmazonS3/latest/userguide/"
                                      "access-control-block-public-access.html")
    assert "compliance" not in details["finding"]
    assert sent["links"][0]["href"] == ("https://console.aws.amazon.com/xray/home?region=eu-west-1#/traces/"
                                        "1-4bf92f35-77b34da6a3ce929d0e0e4736")


def test_pagerduty_accepts_the_most_compliance_an_escalation_can_carry():
    with PagerDutyReceiver(ROUTING_KEY) as receiver:
        request = pagerduty.build_request(failing(MOST_COMPLIANCE, REMEDIATION),
                                          sink("pagerduty", url=receiver.enqueue_url), Secret(ROUTING_KEY),
                                          trace_url_template=JAEGER)
        status, _ = send(request)

    details = json.loads(request.body)["payload"]["custom_details"]
    assert status == 202 and len(request.body) <= pagerduty.EVENT_MAX_BYTES
    assert len(json.dumps(details["compliance"])) <= pagerduty.DETAIL_MAX_BYTES


def test_pagerduty_resolve_names_only_the_alert():
    event = escalation(state="resolved", version=3)

    _, url, _, body = pagerduty.build_request(event, sink("pagerduty", url="http://127.0.0.1:9/v2/enqueue"),
                                              Secret(ROUTING_KEY), trace_url_template=JAEGER)

    assert url == "http://127.0.0.1:9/v2/enqueue"
    assert json.loads(body) == {"routing_key": ROUTING_KEY, "dedup_key": event.escalation_uid,
                                "event_action": "resolve"}


def test_pagerduty_summary_is_cut_to_the_api_limit():
    event = escalation_event()
    event["finding"]["title"] = "x" * 5000

    _, _, _, body = pagerduty.build_request(escalation_from_dict(event), sink("pagerduty"), Secret(ROUTING_KEY),
                                            trace_url_template=JAEGER)

    summary = json.loads(body)["payload"]["summary"]
    assert len(summary) == 1024 and summary.endswith("...")


def test_pagerduty_receiver_pages_once_per_dedup_key_and_resolves():
    with PagerDutyReceiver(ROUTING_KEY) as receiver:
        target = sink("pagerduty", url=receiver.enqueue_url)
        first = escalation(priority="P3")
        for event in (first, escalation(state="updated", version=2, priority="P1"), first):
            status, answer = send(pagerduty.build_request(event, target, Secret(ROUTING_KEY),
                                                          trace_url_template=JAEGER))
            assert (status, answer["status"], answer["dedup_key"]) == (202, "success", first.escalation_uid)
        send(pagerduty.build_request(escalation(state="resolved", version=3), target, Secret(ROUTING_KEY),
                                     trace_url_template=JAEGER))

        assert receiver.opened(first.escalation_uid) == 1
        assert receiver.status(first.escalation_uid) == "closed"


def test_pagerduty_refuses_a_wrong_routing_key_with_an_error_body():
    with PagerDutyReceiver(ROUTING_KEY) as receiver:
        request = pagerduty.build_request(escalation(), sink("pagerduty", url=receiver.enqueue_url),
                                          Secret("not-the-key"), trace_url_template=JAEGER)
        status, answer = send(request)

    outcome = pagerduty.classify(status, {}, json.dumps(answer).encode(), NOW)
    assert outcome == Permanent("HTTP 400: Event object is invalid; Invalid routing key")


# --- Opsgenie -------------------------------------------------------------------------------------


def test_opsgenie_create_and_close():
    event = escalation(priority="P1")
    ops_sink = sink("opsgenie", url="https://api.eu.opsgenie.com/")

    method, url, headers, body = opsgenie.build_requests(event, ops_sink, Secret(GENIE_KEY),
                                                         trace_url_template=JAEGER)[0]
    alert = json.loads(body)
    assert (method, url) == ("POST", "https://api.eu.opsgenie.com/v2/alerts")
    assert headers["Authorization"] == f"GenieKey {GENIE_KEY}"
    assert alert["alias"] == event.escalation_uid and alert["priority"] == "P1"
    assert alert["message"].startswith("[P1] ") and len(alert["message"]) <= 130
    assert alert["entity"] == "arn:aws:s3:::payments-exports"
    assert alert["details"]["trace_1"] == "https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736"
    assert {"owner:payments", "environment:prod", "priority:P1"} <= set(alert["tags"])
    assert all(isinstance(value, str) for value in alert["details"].values())

    resolved = escalation(state="resolved", version=2)
    _, close_url, _, close_body = opsgenie.build_requests(resolved, ops_sink, Secret(GENIE_KEY),
                                                          trace_url_template=JAEGER)[0]
    assert close_url == f"https://api.eu.opsgenie.com/v2/alerts/{resolved.escalation_uid}/close?identifierType=alias"
    assert json.loads(close_body)["source"] == "hotpath"


def test_opsgenie_details_name_each_failing_framework_and_the_fix_within_8000_characters():
    ops_sink = sink("opsgenie")
    alert = json.loads(opsgenie.build_requests(failing(COMPLIANCE, REMEDIATION), ops_sink, Secret(GENIE_KEY),
                                               trace_url_template=JAEGER)[0].body)

    assert alert["details"]["compliance"] == "CIS-2.0: 2.1.5, 2.1.4\nPCI DSS v4.0.1: 1.3.1"
    assert alert["details"]["remediation"].startswith("Turn on S3 Block Public Access for the bucket.\nhttps://")
    assert "compliance" not in json.loads(opsgenie.build_requests(escalation(), ops_sink, Secret(GENIE_KEY),
                                                                  trace_url_template=JAEGER)[0].body)["details"]

    with OpsgenieReceiver(GENIE_KEY) as receiver:
        status, answer = send(opsgenie.build_requests(failing(MOST_COMPLIANCE, REMEDIATION),
                                                      sink("opsgenie", url=receiver.url), Secret(GENIE_KEY),
                                                      trace_url_template=JAEGER)[0])
    assert (status, answer["result"]) == (202, "Request will be processed")


def test_opsgenie_receiver_deduplicates_on_alias_and_refuses_a_bad_key():
    with OpsgenieReceiver(GENIE_KEY) as receiver:
        target = sink("opsgenie", url=receiver.url)
        event = escalation()
        for _ in range(2):
            status, answer = send(opsgenie.build_requests(event, target, Secret(GENIE_KEY),
                                                          trace_url_template=JAEGER)[0])
            assert (status, answer["result"]) == (202, "Request will be processed")
        send(opsgenie.build_requests(escalation(state="resolved", version=2), target, Secret(GENIE_KEY),
                                     trace_url_template=JAEGER)[0])
        status, answer = send(opsgenie.build_requests(event, target, Secret("wrong"), trace_url_template=JAEGER)[0])

        assert receiver.opened(event.escalation_uid) == 1
        assert receiver.status(event.escalation_uid) == "closed"
    assert (opsgenie.classify(status, {}, json.dumps(answer).encode(), NOW)
            == Permanent("HTTP 401: Could not authenticate"))


# --- generic webhook and its signature ------------------------------------------------------------


def test_webhook_body_is_the_event_and_the_signature_verifies():
    raw = escalation_event()
    method, url, headers, body = webhook.build_request(escalation_from_dict(raw), sink("webhook", url="https://hooks.example.com/x"),
                                                       Secret(HMAC_SECRET), now=NOW)

    assert (method, url) == ("POST", "https://hooks.example.com/x")
    assert json.loads(body) == raw
    assert headers[webhook.DEDUP_KEY_HEADER] == raw["escalation_uid"]
    header = headers[webhook.SIGNATURE_HEADER]
    assert header.startswith(f"t={int(NOW)},v1=")
    assert webhook.verify_signature(header, body, HMAC_SECRET, tolerance_s=300, now=NOW + 299)


@pytest.mark.parametrize("tamper", ["wrong secret", "stale", "from the future", "body changed", "no v1", "no t",
                                    "empty"])
def test_webhook_signature_refuses(tamper):
    body = b'{"escalation_uid":"hp-0"}'
    header = webhook.signature(body, HMAC_SECRET, int(NOW))
    secret, now = HMAC_SECRET, NOW
    if tamper == "wrong secret":
        secret = "whsec-other"
    elif tamper == "stale":
        now = NOW + 301
    elif tamper == "from the future":
        now = NOW - 301
    elif tamper == "body changed":
        body = body.replace(b"hp-0", b"hp-1")
    elif tamper == "no v1":
        header = header.split(",")[0]
    elif tamper == "no t":
        header = header.split(",")[1]
    else:
        header = ""

    assert not webhook.verify_signature(header, body, secret, tolerance_s=300, now=now)


def test_webhook_signature_accepts_any_of_several_v1_during_secret_rotation():
    body = b"{}"
    old = webhook.signature(body, "old-secret", int(NOW))
    new = webhook.signature(body, HMAC_SECRET, int(NOW))
    header = f"{new},{old.split(',')[1]}"

    assert webhook.verify_signature(header, body, "old-secret", 300, NOW)
    assert webhook.verify_signature(header, body, HMAC_SECRET, 300, NOW)


def test_webhook_receiver_verifies_and_deduplicates_on_key_and_version():
    with WebhookReceiver(HMAC_SECRET) as receiver:
        target = sink("webhook", url=receiver.url + "/hotpath")
        event = escalation()
        answers = [send(webhook.build_request(event, target, Secret(HMAC_SECRET), now=time.time()))[0]
                   for _ in range(2)]
        forged = send(webhook.build_request(event, target, Secret("guess"), now=time.time()))[0]

    assert answers == [200, 409] and forged == 401
    assert receiver.opened(event.escalation_uid) == 1
    assert [webhook.classify(status, {}, b"", NOW) for status in answers] == [Accepted(200), Accepted(409)]


# --- classification of answers --------------------------------------------------------------------


def test_answers_are_accepted_retried_or_permanent():
    pd_400 = json.dumps({"status": "invalid event", "message": "Event object is invalid",
                         "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"]}).encode()
    og_422 = json.dumps({"message": "Request body is not processable. Please check the errors.",
                         "errors": {"message": "Message can not be empty."}, "took": 0.0}).encode()

    assert classify_response(202, {}, b'{"status":"success"}', NOW) == Accepted(202)
    assert classify_response(400, {}, pd_400, NOW) == Permanent(
        "HTTP 400: Event object is invalid; Length of 'routing_key' is incorrect (should be 32 characters)")
    assert classify_response(422, {}, og_422, NOW) == Permanent(
        "HTTP 422: Request body is not processable. Please check the errors.; message: Message can not be empty.")
    assert classify_response(429, {"Retry-After": "7"}, b"", NOW) == Retry("HTTP 429: (empty body)", 7.0)
    assert classify_response(503, {"Retry-After": formatdate(NOW + 30, usegmt=True)}, b"down", NOW) == Retry(
        "HTTP 503: down", 30.0)
    assert (classify_response(500, {"Retry-After": "soon"}, b"<html>oops</html>", NOW)
            == Retry("HTTP 500: <html>oops</html>"))
    assert isinstance(classify_response(404, {}, b"", NOW), Permanent)
    assert isinstance(pagerduty.classify(409, {}, b"", NOW), Permanent)


# --- routing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("priority", "threshold", "routed"), [
    ("P1", "P3", True), ("P3", "P3", True), ("P4", "P3", False), ("P2", "P1", False), ("P5", "P5", True),
])
def test_priority_threshold(priority, threshold, routed):
    reason = skip_reason(sink("pagerduty", min_priority=threshold), escalation(priority=priority))

    assert reason == (None if routed else "below_min_priority")


def test_owner_and_environment_route_each_team_to_its_own_sink():
    payments_prod = sink("pagerduty", match_owner="payments", match_environment="prod")
    search_team = sink("pagerduty", match_owner="search")
    event = escalation(owner="payments", environment="prod")

    assert skip_reason(payments_prod, event) is None and skip_reason(search_team, event) == "owner_mismatch"
    assert skip_reason(payments_prod, escalation(owner="payments", environment="staging")) == "environment_mismatch"
    assert skip_reason(payments_prod, escalation(owner=None, environment=None)) == "owner_mismatch"


def test_resolved_reaches_matching_sinks_whatever_its_priority():
    paging = sink("pagerduty", min_priority="P2", match_owner="payments")

    assert skip_reason(paging, escalation(state="updated", priority="P4")) == "below_min_priority"
    assert skip_reason(paging, escalation(state="resolved", priority="P4")) is None
    assert skip_reason(paging, escalation(state="resolved", priority="P1", owner="search")) == "owner_mismatch"


# --- secrets ------------------------------------------------------------------------------------------


def test_a_secret_never_prints():
    secret = Secret(ROUTING_KEY)

    assert ROUTING_KEY not in f"{secret} {secret!r} {[secret]} {({'k': secret})}"
    assert secret.redact(f"echo: {ROUTING_KEY}!") == "echo: ***!"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_secrets_come_from_the_environment_or_a_file(tmp_path: Path):
    key_file = tmp_path / "genie.key"
    key_file.write_text(GENIE_KEY + "\n")

    assert load_secret(sink("pagerduty"), {"SECRET": ROUTING_KEY}).reveal() == ROUTING_KEY
    from_file = SinkSettings(name="og", kind="opsgenie", secret_file=key_file)
    assert load_secret(from_file, {}).reveal() == GENIE_KEY


def test_a_missing_secret_is_a_config_error_naming_where_it_was_looked_for(tmp_path: Path):
    with pytest.raises(ConfigError, match="environment variable SECRET is empty or unset"):
        load_secret(sink("pagerduty"), {})
    with pytest.raises(ConfigError, match="exactly one of secret_env or secret_file"):
        load_secret(SinkSettings(name="x", kind="webhook", url="http://h"), {})
    with pytest.raises(ConfigError, match="cannot read secret_file"):
        load_secret(SinkSettings(name="x", kind="webhook", url="http://h", secret_file=tmp_path / "none"), {})


def test_sink_configuration_mistakes_are_refused_up_front():
    with pytest.raises(ConfigError, match="needs a url"):
        check_sinks([SinkSettings(name="hook", kind="webhook", secret_env="S")])
    with pytest.raises(ConfigError, match="two sinks are named 'pd'"):
        check_sinks([SinkSettings(name="pd", kind="pagerduty", secret_env="S")] * 2)


def test_sinks_configured_from_hotpath_sinks_json(monkeypatch):
    monkeypatch.setenv("HOTPATH_SINKS", json.dumps([
        {"name": "payments-pd", "kind": "pagerduty", "min_priority": "P2", "match_owner": "payments",
         "secret_env": "PD_KEY"},
        {"name": "audit", "kind": "webhook", "url": "https://audit.example.com/in", "min_priority": "P5",
         "secret_env": "HOOK"},
    ]))
    settings = load_settings()

    clients = sink_clients(settings, {"PD_KEY": ROUTING_KEY, "HOOK": HMAC_SECRET})

    assert [(c.name, c.settings.kind, c.settings.min_priority) for c in clients] == [
        ("payments-pd", "pagerduty", "P2"), ("audit", "webhook", "P5")]
    _, url, headers, _ = clients[1].build(escalation(), NOW)[0]
    assert url == "https://audit.example.com/in"
    assert webhook.SIGNATURE_HEADER in headers
    assert ROUTING_KEY not in repr(clients)
