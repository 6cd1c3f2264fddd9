"""The sink registry: each kind HOTPATH_SINKS names is one registered module, and a new kind needs no other change."""

from __future__ import annotations

from typing import get_args

import orjson
import pytest
from receivers import escalation_event

from stream.deliver import opsgenie, pagerduty, webhook
from stream.deliver.escalation import escalation_from_dict
from stream.deliver.http import Accepted, HttpRequest, Permanent, Retry, json_request
from stream.deliver.registry import SINK_KINDS, check_sinks, sink_clients
from stream.deliver.sink import SinkKind
from stream.settings import ConfigError, Settings, SinkSettings

SECRETS = {"PD_KEY": "R0UT1NGK3Y0123456789abcdefabcdef", "OG_KEY": "eb243592-faa2-4ba2-a551-1afdf565c889",
           "HOOK_KEY": "whsec-3a9c1f0e7d", "CHAT_TOKEN": "chat-t0ken-5e3f"}
NOW = 1_741_943_700.0


def configured(*sinks: SinkSettings) -> Settings:
    return Settings(sinks=list(sinks), trace_url_template="https://jaeger.example.com/trace/{trace_id}")


def event(**changes):
    return escalation_from_dict(escalation_event(**changes))


def test_the_registry_holds_exactly_the_kinds_the_settings_accept():
    assert set(SINK_KINDS) == set(get_args(SinkSettings.model_fields["kind"].annotation))
    assert [kind.name for kind in (pagerduty.SINK, opsgenie.SINK, webhook.SINK)] == list(SINK_KINDS)


def test_each_configured_sink_builds_and_reads_answers_as_its_kind():
    pd, og, hook = sink_clients(configured(
        SinkSettings(name="payments-pd", kind="pagerduty", secret_env="PD_KEY"),
        SinkSettings(name="sre-og", kind="opsgenie", secret_env="OG_KEY"),
        SinkSettings(name="audit", kind="webhook", url="https://audit.example.com/in", secret_env="HOOK_KEY"),
    ), SECRETS)
    change = escalation_from_dict(escalation_event(state="updated", version=2, priority="P1")
                                  | {"previous_priority": "P3"})

    assert [request.url for request in pd.build(change, NOW)] == [pagerduty.DEFAULT_URL]
    assert [(request.method, request.url.split("?")[0]) for request in og.build(change, NOW)] == [
        ("POST", f"{opsgenie.DEFAULT_URL}/v2/alerts"),
        ("PUT", f"{opsgenie.DEFAULT_URL}/v2/alerts/{change.escalation_uid}/priority")]
    [signed] = hook.build(change, NOW)
    assert signed.url == "https://audit.example.com/in"
    assert webhook.verify_signature(signed.headers[webhook.SIGNATURE_HEADER], signed.body, SECRETS["HOOK_KEY"], now=NOW)
    assert "jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736" in pd.build(change, NOW)[0].body.decode()
    # 409 from a webhook receiver means it has the delivery already; from PagerDuty it is a refusal.
    assert hook.classify(409, {}, b"", NOW) == Accepted(409)
    assert isinstance(pd.classify(409, {}, b"", NOW), Permanent)


def test_a_kind_without_a_default_url_needs_one_configured():
    with pytest.raises(ConfigError, match="HOTPATH_SINKS: webhook sink 'audit' needs a url"):
        check_sinks([SinkSettings(name="audit", kind="webhook", secret_env="HOOK_KEY")])
    check_sinks([SinkSettings(name="pd", kind="pagerduty", secret_env="PD_KEY")])  # PagerDuty has its own


def chat_requests(escalation, sink, secret, *, now, trace_url_template) -> list[HttpRequest]:
    """A made-up chat service: one message per event, the token in a header."""
    message = {"text": f"[{escalation.priority}] {escalation.finding.title}", "key": escalation.dedup_key}
    return [json_request(sink.url, message, {"Authorization": f"Bearer {secret.reveal()}"})]


def chat_classify(status, headers, body, now):
    return Accepted(status) if status == 200 else Retry(f"HTTP {status}")


def test_a_new_sink_kind_is_one_registration(monkeypatch):
    """What a new sink module adds (its ``SINK`` in the registry) is all the service needs to send through it."""
    monkeypatch.setitem(SINK_KINDS, "chat", SinkKind("chat", chat_requests, chat_classify, default_url=None))
    chat = SinkSettings.model_construct(name="ops-chat", kind="chat", url="https://chat.example.com/hook",
                                        secret_env="CHAT_TOKEN", min_priority="P3")

    with pytest.raises(ConfigError, match="chat sink 'ops-chat' needs a url"):
        check_sinks([chat.model_copy(update={"url": None})])
    [client] = sink_clients(configured(chat), SECRETS)

    [request] = client.build(event(priority="P1"), NOW)
    assert request.url == "https://chat.example.com/hook"
    assert request.headers["Authorization"] == f"Bearer {SECRETS['CHAT_TOKEN']}"
    assert orjson.loads(request.body)["text"].startswith("[P1] Ensure there are no S3 buckets open")
    assert client.classify(503, {}, b"", NOW) == Retry("HTTP 503")
    assert SECRETS["CHAT_TOKEN"] not in repr(client)
