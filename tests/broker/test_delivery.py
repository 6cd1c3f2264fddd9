"""Delivery that loses nothing: the real broker, real HTTP receivers, and a worker killed mid-delivery."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
from delivery import pagerduty_sink, uncommitted
from jsonschema import Draft202012Validator
from paths import ROOT
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from receivers import (
    ACCEPT_THEN_DROP,
    DROP,
    HANG,
    POLICY_VERSION,
    OpsgenieReceiver,
    PagerDutyReceiver,
    WebhookReceiver,
    escalation_event,
    load_schema,
    suppressed_event,
)

from stream.deliver.backoff import backoff_delay
from stream.deliver.lane import CONSUME_BATCH, MAX_IN_FLIGHT_PER_PARTITION, PartitionProgress, lane_group
from stream.deliver.metrics import DeliveryMetrics
from stream.deliver.registry import sink_clients
from stream.deliver.service import DeliveryService
from stream.demo.ports import free_port
from stream.kafka import clients as kafka
from stream.logs import JsonFormatter
from stream.settings import Settings, SinkSettings

ROUTING_KEY = "R0UT1NGK3Y0123456789abcdefabcdef"
GENIE_KEY = "eb243592-faa2-4ba2-a551-1afdf565c889"
HMAC_SECRET = "whsec-3a9c1f0e7d55"
PLATFORM_ROUTING_KEY = "PL4TF0RMK3Y0123456789abcdefabcde"
SECRETS = {"PD_ROUTING_KEY": ROUTING_KEY, "PD_PLATFORM_KEY": PLATFORM_ROUTING_KEY, "OG_GENIE_KEY": GENIE_KEY,
           "HOOK_SECRET": HMAC_SECRET}
OCSF_SCHEMA = Draft202012Validator(load_schema("ocsf-detection-finding.schema.json"))
DLQ_SCHEMA = Draft202012Validator(load_schema("dlq.schema.json"), format_checker=Draft202012Validator.FORMAT_CHECKER)
WAIT_S = 60.0


# --- pure parts ---------------------------------------------------------------------------------------


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap():
    highest = [backoff_delay(n, base_s=0.5, max_s=30.0, rng=lambda: 1.0) for n in range(8)]
    lowest = [backoff_delay(n, base_s=0.5, max_s=30.0, rng=lambda: 0.0) for n in range(8)]

    assert highest == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert lowest == [0.0] * 8
    assert backoff_delay(10_000, base_s=0.5, max_s=30.0, rng=lambda: 0.5) == 15.0


def test_backoff_waits_at_least_retry_after_but_never_past_the_cap():
    assert backoff_delay(0, base_s=0.5, max_s=30.0, retry_after_s=7.0, rng=lambda: 1.0) == 7.0
    assert backoff_delay(5, base_s=0.5, max_s=30.0, retry_after_s=2.0, rng=lambda: 1.0) == 16.0
    assert backoff_delay(0, base_s=0.5, max_s=30.0, retry_after_s=3600.0) == 30.0


def test_commit_position_waits_for_every_earlier_record():
    progress = PartitionProgress()
    for offset in (10, 11, 12, 13):
        progress.started(offset)

    progress.finished(12)
    progress.finished(11)
    assert progress.to_commit() is None and progress.in_flight == 4
    progress.finished(10)
    assert progress.to_commit() == 13 and progress.in_flight == 1
    progress.committed = 13
    assert progress.to_commit() is None
    progress.finished(13)
    assert progress.to_commit() == 14 and progress.in_flight == 0


def test_deliver_with_a_missing_secret_stops_with_one_line_naming_the_variable():
    env = deliver_env(HOTPATH_SINKS=json.dumps([{"name": "payments-pd", "kind": "pagerduty",
                                                 "secret_env": "PD_KEY_NOT_SET"}]))

    done = subprocess.run([sys.executable, "-m", "stream.commands.main", "deliver"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=WAIT_S)

    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == ("hotpath: configuration error: HOTPATH_SINKS: sink 'payments-pd': "
                                                    "environment variable PD_KEY_NOT_SET is empty or unset")
    assert "Traceback" not in done.stderr


# --- helpers for the broker tests ------------------------------------------------------------------------


def delivery_settings(settings: Settings, sinks: list[dict], **changes) -> Settings:
    return settings.model_copy(update={
        "sinks": [SinkSettings(**sink) for sink in sinks],
        "delivery_backoff_base_s": 0.05, "delivery_backoff_max_s": 1.0, "delivery_request_timeout_s": 5.0,
        "deliver_web_port": 0, **changes,
    })



def produce(settings: Settings, events: list[dict | bytes], partition: int | None = None) -> list[int]:
    """Write events keyed by finding uid (raw bytes as they are); returns the partition each landed on."""
    producer = kafka.producer(settings)
    partitions: list[int] = [-1] * len(events)
    for index, event in enumerate(events):
        if isinstance(event, bytes):
            key, value = b"garbage", event
        else:
            key, value = event["finding_uid"].encode(), orjson.dumps(event)
        placement = {} if partition is None else {"partition": partition}
        producer.produce(settings.topic_escalations, key=key, value=value, **placement,
                         on_delivery=lambda error, message, index=index: partitions.__setitem__(index,
                                                                                                message.partition()))
    assert producer.flush(30) == 0 and -1 not in partitions
    return partitions


def read_topic(settings: Settings, topic: str, count: int) -> list[tuple[bytes, dict]]:
    """The first ``count`` records of ``topic`` (all partitions), as (key, JSON value)."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    consumer = kafka.consumer(settings, f"reader-{uuid.uuid4().hex}", enable_auto_commit=False)
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[tuple[bytes, dict]] = []
    deadline = time.monotonic() + WAIT_S
    try:
        while len(records) < count and time.monotonic() < deadline:
            for message in consumer.consume(100, 0.5):
                if message.error() is None:
                    records.append((message.key(), json.loads(message.value())))
    finally:
        consumer.close()
    return records





async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


class Running:
    """A DeliveryService running in this event loop until the block ends."""

    def __init__(self, settings: Settings, **options):
        self.service = DeliveryService(settings, sink_clients(settings, SECRETS),
                                       metrics=DeliveryMetrics(CollectorRegistry()), **options)
        self.stop = asyncio.Event()

    async def __aenter__(self) -> DeliveryService:
        self.task = asyncio.create_task(self.service.run(self.stop))
        return self.service

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, WAIT_S)


def retries(service: DeliveryService, sink: str) -> float:
    return service.metrics.value("hotpath_deliver_retries_total", sink=sink)


def delivered(service: DeliveryService, sink: str) -> float:
    return service.metrics.value("hotpath_deliver_delivered_total", sink=sink)


def secret_free(text: str) -> bool:
    return not any(secret in text for secret in SECRETS.values())


# --- the service on the live broker -----------------------------------------------------------------------


async def test_every_escalation_reaches_each_matching_sink_once_despite_failures(hotpath_settings):
    findings = [f"prowler-finding-{n}" for n in range(6)]
    events = [escalation_event(uid, priority="P2") for uid in findings]
    events += [escalation_event(uid, state="resolved", version=2, priority="P4") for uid in findings[:3]]
    quiet = escalation_event("prowler-finding-low", priority="P4")  # below the paging thresholds
    events.append(quiet)
    with PagerDutyReceiver(ROUTING_KEY) as pd, OpsgenieReceiver(GENIE_KEY) as og, WebhookReceiver(HMAC_SECRET) as hook:
        pd.script((429, {"status": "throttle event"}, {"Retry-After": "1"}), (500, None, {}), DROP, ACCEPT_THEN_DROP)
        og.script((429, {"message": "Too many requests"}, {"Retry-After": "0"}), (502, None, {}))
        hook.script((503, None, {}), ACCEPT_THEN_DROP)
        settings = delivery_settings(hotpath_settings, [
            pagerduty_sink(pd),
            {"name": "sre-opsgenie", "kind": "opsgenie", "url": og.url, "min_priority": "P2",
             "secret_env": "OG_GENIE_KEY"},
            {"name": "audit-hook", "kind": "webhook", "url": hook.url + "/in", "min_priority": "P5",
             "secret_env": "HOOK_SECRET"},
        ])
        produce(settings, events)
        keys = [event["escalation_uid"] for event in events[:6]]

        def all_delivered() -> bool:
            return (all(pd.status(k) and og.status(k) for k in keys)
                    and all(pd.status(k) == og.status(k) == "closed" for k in keys[:3])
                    and sum(len(alert.events) for alert in hook.alerts.values()) == len(events)
                    and not uncommitted(settings))

        async with Running(settings) as service:
            await wait_until(all_delivered, "every event is delivered and committed")

    for key in keys:
        assert pd.opened(key) == 1 and og.opened(key) == 1, "a retry paged twice"
    assert [pd.status(k) for k in keys] == ["closed"] * 3 + ["open"] * 3, "a resolve overtook its trigger"
    assert pd.status(quiet["escalation_uid"]) is None and og.status(quiet["escalation_uid"]) is None
    assert hook.opened(quiet["escalation_uid"]) == 1
    assert retries(service, "payments-pd") >= 4 and retries(service, "sre-opsgenie") >= 2
    assert retries(service, "audit-hook") >= 2
    assert service.metrics.totals()["hotpath_deliver_dead_lettered"] == 0
    siem = read_topic(settings, settings.topic_siem, len(events))
    assert len(siem) == len(events) == service.metrics.value("hotpath_deliver_siem_published_total")
    for key, ocsf in siem:
        OCSF_SCHEMA.validate(ocsf)
        assert key.decode() == ocsf["finding_info"]["uid"]
    assert sorted(o["activity_id"] for _, o in siem) == [1] * 7 + [3] * 3


async def test_policy_routes_pick_the_receivers_and_a_muted_finding_never_pages(hotpath_settings):
    to_payments = {"sinks": ["payments-pd", "audit-hook"], "opsgenie_team": None}
    to_platform = {"sinks": ["platform-pd", "sre-opsgenie"], "opsgenie_team": "platform-oncall"}
    judged = {"policy_version": POLICY_VERSION}
    payments = escalation_event("prowler-routed-payments", priority="P1", routing=to_payments, **judged)
    platform = escalation_event("prowler-routed-platform", priority="P1", routing=to_platform, **judged)
    everyone = escalation_event("prowler-unrouted", priority="P1", **judged)
    events = [payments, platform, everyone, suppressed_event("prowler-routed-payments", routing=to_payments),
              suppressed_event("prowler-unrouted")]
    pay, plat, every = (event["escalation_uid"] for event in (payments, platform, everyone))
    with (PagerDutyReceiver(ROUTING_KEY) as pd_payments, PagerDutyReceiver(PLATFORM_ROUTING_KEY) as pd_platform,
          OpsgenieReceiver(GENIE_KEY) as og, WebhookReceiver(HMAC_SECRET) as hook):
        settings = delivery_settings(hotpath_settings, [
            pagerduty_sink(pd_payments),
            pagerduty_sink(pd_platform, "platform-pd", secret_env="PD_PLATFORM_KEY"),
            {"name": "sre-opsgenie", "kind": "opsgenie", "url": og.url, "min_priority": "P2",
             "secret_env": "OG_GENIE_KEY"},
            {"name": "audit-hook", "kind": "webhook", "url": hook.url, "min_priority": "P5",
             "secret_env": "HOOK_SECRET"},
        ])
        produce(settings, events)

        def all_delivered() -> bool:
            return (pd_payments.status(pay) == pd_payments.status(every) == "closed"
                    and pd_platform.status(every) == og.status(every) == "closed"
                    and pd_platform.status(plat) == og.status(plat) == "open"
                    and hook.status(pay) == hook.status(every) == "closed"
                    and not uncommitted(settings))

        async with Running(settings) as service:
            await wait_until(all_delivered, "every routed event is delivered and committed")
        siem = read_topic(settings, settings.topic_siem, len(events))

    assert pd_payments.actions.count(("trigger", pay)) == pd_payments.actions.count(("resolve", pay)) == 1
    assert {key for _, key in pd_payments.actions} == {pay, every}, "payments' PagerDuty got another team's event"
    # another team's finding reaches platform's PagerDuty only as the close of its suppression (closing events
    # ignore routes, which may have moved since a sink paged): never as a page
    assert {key for _, key in pd_platform.actions} == {plat, every, pay}
    assert [action for action, key in pd_platform.actions if key == pay] == ["resolve"]
    assert [action for action, key in pd_platform.actions if key == every] == ["trigger", "resolve"]
    assert {request.json.get("alias") for request in og.requests if request.path == "/v2/alerts"} == {plat, every}
    assert og.responders(plat) == [{"type": "team", "name": "platform-oncall"}] and og.responders(every) == []
    assert plat not in hook.alerts and len(hook.requests) == 4
    skipped = {sink: service.metrics.value("hotpath_deliver_skipped_total", sink=sink, reason="not_routed")
               for sink in ("payments-pd", "platform-pd", "sre-opsgenie", "audit-hook")}
    assert skipped == {"payments-pd": 1, "platform-pd": 1, "sre-opsgenie": 1, "audit-hook": 1}
    for _, ocsf in siem:
        OCSF_SCHEMA.validate(ocsf)
    assert sorted(ocsf["status_id"] for _, ocsf in siem) == [1, 1, 1, 3, 3], "the SIEM feed did not take everything"


async def test_permanent_failures_and_spent_budgets_land_in_the_dead_letter_topic(hotpath_settings, caplog):
    event = escalation_event("prowler-finding-dlq", priority="P1")
    garbage = b'{"finding_uid": "truncated'
    with PagerDutyReceiver(ROUTING_KEY) as pd, OpsgenieReceiver(GENIE_KEY) as og, WebhookReceiver(HMAC_SECRET) as hook:
        # A 400 whose body echoes the key it refused, as some services do: it must not leak.
        pd.script((400, {"status": "invalid event", "message": "Event object is invalid",
                         "errors": [f"routing_key {ROUTING_KEY} is not active"]}, {}))
        og.script(*[(500, {"message": "Internal Server Error"}, {})] * 10)
        settings = delivery_settings(hotpath_settings, [
            pagerduty_sink(pd),
            {"name": "sre-opsgenie", "kind": "opsgenie", "url": og.url, "secret_env": "OG_GENIE_KEY"},
            {"name": "audit-hook", "kind": "webhook", "url": hook.url, "secret_env": "HOOK_SECRET"},
        ], delivery_retry_budget=2)
        produce(settings, [event, garbage])
        caplog.set_level(logging.INFO, logger="hotpath")
        async with Running(settings) as service:
            await wait_until(lambda: service.metrics.totals()["hotpath_deliver_dead_lettered"] == 3
                             and not uncommitted(settings),
                             "three dead letters are written and the offsets committed")

    assert hook.opened(event["escalation_uid"]) == 1, "a failing sink must not hold back the others"
    assert len(og.requests) == 3  # the first attempt and two retries
    dead = {record["reason"].split(":")[0]: record for _, record in read_topic(settings, settings.topic_dlq, 3)}
    for record in dead.values():
        DLQ_SCHEMA.validate(record)
        assert record["stage"] == "delivery" and secret_free(json.dumps(record))
    pd_letter = dead["sink payments-pd (pagerduty)"]
    assert pd_letter["reason"] == ("sink payments-pd (pagerduty): permanent failure: HTTP 400: "
                                   "Event object is invalid; routing_key *** is not active")
    assert json.loads(pd_letter["value"]) == event
    assert pd_letter["origin"]["key"] == event["finding_uid"]
    og_letter = dead["sink sre-opsgenie (opsgenie)"]
    assert og_letter["reason"] == ("sink sre-opsgenie (opsgenie): gave up after 3 attempts: "
                                   "HTTP 500: Internal Server Error")
    unreadable = dead["cannot read escalation event"]
    assert unreadable["value"] == garbage.decode() and unreadable["origin"]["key"] == "garbage"
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert any('"dead-lettered"' in line and "payments-pd" in line for line in lines)
    assert secret_free("\n".join(lines))


async def test_a_hanging_sink_holds_back_only_its_own_event_and_its_commit(hotpath_settings):
    stuck, *others = [escalation_event(f"prowler-finding-{n}", priority="P2") for n in range(5)]
    with PagerDutyReceiver(ROUTING_KEY) as pd, WebhookReceiver(HMAC_SECRET) as hook:
        hook.script(HANG, when=lambda request: request.headers.get("X-Hotpath-Dedup-Key") == stuck["escalation_uid"])
        settings = delivery_settings(hotpath_settings, [
            pagerduty_sink(pd),
            {"name": "audit-hook", "kind": "webhook", "url": hook.url, "secret_env": "HOOK_SECRET"},
        ], delivery_request_timeout_s=WAIT_S)
        partitions = produce(settings, [stuck, *others])
        # Records after the stuck one in its partition are delivered, but cannot be committed before it.
        held_back = {(lane_group(settings.app_id, "audit-hook"), partitions[0]): partitions.count(partitions[0])}
        async with Running(settings):
            await wait_until(lambda: all(pd.opened(e["escalation_uid"]) and hook.opened(e["escalation_uid"])
                                         for e in others)
                             and pd.opened(stuck["escalation_uid"]) and hook.hanging.is_set()
                             and uncommitted(settings) == held_back,
                             "everything but the stuck webhook is delivered, and the rest committed")
            assert hook.opened(stuck["escalation_uid"]) == 0
            hook.release()  # the hung request is dropped; the retry goes through
            await wait_until(lambda: hook.opened(stuck["escalation_uid"]) == 1 and not uncommitted(settings),
                             "the stuck event is delivered and committed")

    assert pd.opened(stuck["escalation_uid"]) == 1


async def test_a_partition_with_too_much_in_flight_pauses_while_the_others_go_on(hotpath_settings):
    stuck, *backlog = [escalation_event(f"prowler-backlog-{n}", priority="P2")
                       for n in range(MAX_IN_FLIGHT_PER_PARTITION + CONSUME_BATCH + 1)]
    others = [escalation_event(f"prowler-other-{n}", priority="P2") for n in range(5)]
    with WebhookReceiver(HMAC_SECRET) as hook:
        hook.script(HANG, when=lambda request: request.headers.get("X-Hotpath-Dedup-Key") == stuck["escalation_uid"])
        settings = delivery_settings(hotpath_settings, [
            {"name": "audit-hook", "kind": "webhook", "url": hook.url, "secret_env": "HOOK_SECRET"},
        ], delivery_request_timeout_s=WAIT_S)
        produce(settings, [stuck, *backlog], partition=0)
        async with Running(settings) as service:
            await wait_until(lambda: hook.hanging.is_set()
                             and delivered(service, "audit-hook") >= MAX_IN_FLIGHT_PER_PARTITION,
                             "the backlog behind the stuck record is delivered")
            produce(settings, others, partition=1)
            await wait_until(lambda: all(hook.opened(e["escalation_uid"]) for e in others),
                             "the other partition is delivered")
            read = service.lane("audit-hook").in_flight((settings.topic_escalations, 0))
            assert read < len(backlog) + 1, "the stuck partition was not paused"
            hook.release()
            await wait_until(lambda: not uncommitted(settings),
                             "everything is delivered and committed after the stuck one")

    assert all(hook.opened(e["escalation_uid"]) == 1 for e in [stuck, *backlog, *others])


async def test_stopping_during_back_off_abandons_the_delivery_uncommitted(hotpath_settings):
    event = escalation_event("prowler-finding-stop", priority="P1")
    with PagerDutyReceiver(ROUTING_KEY) as pd:
        pd.script(*[(503, None, {})] * 3)
        settings = delivery_settings(hotpath_settings, [pagerduty_sink(pd)],
                                     delivery_backoff_base_s=WAIT_S, delivery_backoff_max_s=WAIT_S)
        produce(settings, [event])
        async with Running(settings) as service:
            await wait_until(lambda: retries(service, "payments-pd") == 1, "the first retry is scheduled")
        assert uncommitted(settings) and not delivered(service, "payments-pd")

        settings = settings.model_copy(update={"delivery_backoff_base_s": 0.05, "delivery_backoff_max_s": 0.1})
        async with Running(settings) as service:
            await wait_until(lambda: pd.opened(event["escalation_uid"]) == 1 and not uncommitted(settings),
                             "the restarted service delivers and commits")


async def test_a_refused_sink_is_dead_lettered_after_its_budget_while_pagerduty_pages_without_waiting(hotpath_settings):
    # More escalations on one partition than a lane keeps in flight: with one progress for all sinks,
    # the dead webhook would pause the partition and PagerDuty would stop paging.
    events = [escalation_event(f"prowler-refused-{n}", priority="P2") for n in range(MAX_IN_FLIGHT_PER_PARTITION + 20)]
    refusing = f"http://127.0.0.1:{free_port()}/in"  # nothing listens there: every connection is refused
    with PagerDutyReceiver(ROUTING_KEY) as pd:
        settings = delivery_settings(hotpath_settings, [
            pagerduty_sink(pd),
            {"name": "soc-hook", "kind": "webhook", "url": refusing, "secret_env": "HOOK_SECRET"},
        ], delivery_retry_budget=2, delivery_backoff_base_s=WAIT_S, delivery_backoff_max_s=WAIT_S)
        produce(settings, events, partition=0)
        pd_group, soc_group = (lane_group(settings.app_id, name) for name in ("payments-pd", "soc-hook"))
        async with Running(settings, rng=lambda: 1.0) as service:  # the webhook's first back-off lasts WAIT_S
            await wait_until(lambda: all(pd.opened(e["escalation_uid"]) == 1 for e in events)
                             and not uncommitted(settings, [pd_group, lane_group(settings.app_id)]),
                             "PagerDuty pages every escalation and its lane commits, the webhook down meanwhile")
            assert retries(service, "soc-hook") >= 1
            assert uncommitted(settings, [soc_group]) == {(soc_group, 0): len(events)}

        fast = settings.model_copy(update={"delivery_backoff_base_s": 0.01, "delivery_backoff_max_s": 0.05})
        async with Running(fast) as service:
            await wait_until(lambda: not uncommitted(fast), "the webhook's lane spends its budgets and commits")

    assert len(pd.requests) == len(events), "PagerDuty's lane did not resume where it stopped"
    assert retries(service, "soc-hook") == 2 * len(events)
    letters = [letter for _, letter in read_topic(fast, fast.topic_dlq, len(events))]
    assert sorted(letter["origin"]["offset"] for letter in letters) == list(range(len(events)))
    assert all(letter["reason"].startswith("sink soc-hook (webhook): gave up after 3 attempts: network error: ")
               for letter in letters)


async def test_a_new_sink_lane_starts_where_the_delivery_group_stands(hotpath_settings):
    handled = [escalation_event(f"prowler-handled-{n}", priority="P2") for n in range(3)]
    fresh = [escalation_event(f"prowler-fresh-{n}", priority="P2") for n in range(2)]
    with PagerDutyReceiver(ROUTING_KEY) as pd:
        settings = delivery_settings(hotpath_settings, [pagerduty_sink(pd)])
        produce(settings, handled, partition=0)
        # What the one delivery group of earlier versions committed once every sink had the first three.
        commit(settings, lane_group(settings.app_id), partition=0, offset=len(handled))
        produce(settings, fresh, partition=0)
        async with Running(settings):
            await wait_until(lambda: all(pd.opened(e["escalation_uid"]) for e in fresh) and not uncommitted(settings),
                             "the escalations after the delivery group's offset are delivered and committed")

    assert len(pd.requests) == len(fresh), "escalations delivered before the upgrade were paged again"


def commit(settings: Settings, group: str, *, partition: int, offset: int) -> None:
    from confluent_kafka import TopicPartition

    consumer = kafka.consumer(settings, group, enable_auto_commit=False)
    try:
        consumer.commit(offsets=[TopicPartition(settings.topic_escalations, partition, offset)], asynchronous=False)
    finally:
        consumer.close()


async def scrape(session, url: str) -> dict[tuple[str, frozenset], float]:
    """``/metrics`` parsed by prometheus_client: (sample name, labels) -> value."""
    async with session.get(url) as response:
        assert response.status == 200 and response.content_type == "text/plain"
        text = await response.text()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def sample(metrics: dict, name: str, **labels: str) -> float | None:
    return metrics.get((name, frozenset(labels.items())))


async def test_deliver_reports_health_and_per_sink_backlog_on_its_web_server(hotpath_settings):
    import aiohttp

    stuck, *others = [escalation_event(f"prowler-finding-{n}", priority="P2") for n in range(3)]
    night_hook = 'soc "night"\\hook'  # a label value that needs escaping
    with PagerDutyReceiver(ROUTING_KEY) as pd, WebhookReceiver(HMAC_SECRET) as hook:
        hook.script(HANG, when=lambda request: request.headers.get("X-Hotpath-Dedup-Key") == stuck["escalation_uid"])
        settings = delivery_settings(hotpath_settings, [
            pagerduty_sink(pd),
            {"name": night_hook, "kind": "webhook", "url": hook.url, "secret_env": "HOOK_SECRET"},
        ], delivery_request_timeout_s=WAIT_S)
        produce(settings, [stuck, *others], partition=0)
        topic = settings.topic_escalations
        async with Running(settings) as service, aiohttp.ClientSession() as session:
            await wait_until(lambda: service.web_port is not None, "the web server listens")
            base = f"http://127.0.0.1:{service.web_port}"
            metrics: dict = {}

            async def backlog_shows(hook_pending: float, lag: float) -> bool:
                metrics.update(await scrape(session, base + "/metrics"))
                return (sample(metrics, "hotpath_deliver_pending", sink=night_hook) == hook_pending
                        and sample(metrics, "hotpath_deliver_siem_published_total") == 3
                        and sample(metrics, "hotpath_deliver_delivered_total", sink="payments-pd") == 3
                        and sample(metrics, "hotpath_deliver_pending", sink="payments-pd") == 0
                        and sample(metrics, "hotpath_deliver_consumer_lag_records", topic=topic, partition="0") == lag)

            deadline = time.monotonic() + WAIT_S
            while not (hook.hanging.is_set() and await backlog_shows(3, 3)):
                assert time.monotonic() < deadline, f"the stuck webhook's backlog never showed: {metrics}"
                await asyncio.sleep(0.2)
            for path in ("/health/live", "/health/ready", "/health"):
                async with session.get(base + path) as response:
                    assert response.status == 200, (path, await response.text())
            assert sample(metrics, "hotpath_deliver_ready") == 1
            assert sample(metrics, "hotpath_deliver_records_total") == 3
            assert sample(metrics, "hotpath_deliver_delivered_total", sink=night_hook) == 2
            assert sample(metrics, "hotpath_deliver_request_seconds_count", sink="payments-pd") == 3

            hook.release()  # the hung request is dropped; the retry goes through
            deadline = time.monotonic() + WAIT_S
            while not await backlog_shows(0, 0):
                assert time.monotonic() < deadline, f"the backlog never went back to 0: {metrics}"
                await asyncio.sleep(0.2)
            assert sample(metrics, "hotpath_deliver_retries_total", sink=night_hook) == 1


def deliver_env(**variables: str) -> dict[str, str]:
    """The environment of a ``hotpath deliver`` process: this one's without HOTPATH_*, plus ``variables``.

    A crash of the client library's native code leaves the Python stacks in the log (faulthandler).
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("HOTPATH_")}
    return {**env, "PYTHONFAULTHANDLER": "1", **variables}


def test_deliver_serves_the_catalog_metrics_and_process_metrics(hotpath_settings, tmp_path):
    port = free_port()
    hook = {"name": "audit-hook", "kind": "webhook", "url": "http://127.0.0.1:9/", "secret_env": "HOOK_SECRET"}
    process = deliver_process(hotpath_settings, [hook], tmp_path / "deliver.log", HOTPATH_DELIVER_WEB_PORT=str(port))
    try:
        wait_for(lambda: http_status(f"http://127.0.0.1:{port}/health/ready") == 200, "deliver is ready")
        assert http_status(f"http://127.0.0.1:{port}/health/live") == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            families = {family.name: family for family in text_string_to_metric_families(response.read().decode())}
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(WAIT_S)

    assert code == 0
    catalog = {"hotpath_deliver_records": "counter", "hotpath_deliver_delivered": "counter",
               "hotpath_deliver_retries": "counter", "hotpath_deliver_dead_lettered": "counter",
               "hotpath_deliver_skipped": "counter",
               "hotpath_deliver_siem_published": "counter", "hotpath_deliver_request_seconds": "histogram",
               "hotpath_deliver_pending": "gauge", "hotpath_deliver_consumer_lag_records": "gauge",
               "hotpath_deliver_ready": "gauge"}
    assert {name: families[name].type for name in catalog if name in families} == catalog
    assert {sample.labels["sink"] for sample in families["hotpath_deliver_retries"].samples} == {"audit-hook"}
    assert "process_resident_memory_bytes" in families and "python_info" in families
    assert families["hotpath_deliver_ready"].samples[0].value == 1


def http_get(url: str) -> tuple[int, str] | None:
    """The status and body of a GET, or None when nothing answers (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return None


def http_status(url: str) -> int | None:
    answer = http_get(url)
    return answer and answer[0]


def test_deliver_without_a_reachable_broker_is_live_not_ready_then_stops_with_one_line_within_the_bound():
    servers, port = f"127.0.0.1:{free_port()}", free_port()  # nothing listens at the servers
    env = deliver_env(HOTPATH_BOOTSTRAP_SERVERS=servers, HOTPATH_KAFKA_CONNECT_TIMEOUT_S="5",
                      HOTPATH_DELIVER_WEB_PORT=str(port))

    process = subprocess.Popen([sys.executable, "-m", "stream.commands.main", "deliver"], cwd=ROOT, env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/health/ready") is not None or process.poll() is not None,
                 "the web server answers")
        ready = http_get(f"http://127.0.0.1:{port}/health/ready")
        live = http_get(f"http://127.0.0.1:{port}/health/live")
        _, stderr = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()

    assert ready == (503, json.dumps({"ok": False, "status": f"connecting to Kafka at {servers}"}))
    assert live is not None and live[0] == 200
    assert process.returncode == 1
    lines = stderr.strip().splitlines()
    assert len(lines) <= 4, "the client's repeated connection failures were not folded:\n" + stderr
    last = json.loads(lines[-1])
    assert last["level"] == "error" and servers in last["msg"] and "HOTPATH_BOOTSTRAP_SERVERS" in last["msg"]
    assert "Traceback" not in stderr


# --- the kill test ---------------------------------------------------------------------------------------


def deliver_process(settings: Settings, sinks: list[dict], log_file: Path, **variables: str) -> subprocess.Popen:
    """``python -m stream.commands.main deliver`` configured only through HOTPATH_* variables, as an operator would."""
    env = deliver_env(
        HOTPATH_BOOTSTRAP_SERVERS=settings.bootstrap_servers, HOTPATH_APP_ID=settings.app_id,
        HOTPATH_TOPIC_ESCALATIONS=settings.topic_escalations, HOTPATH_TOPIC_SIEM=settings.topic_siem,
        HOTPATH_TOPIC_DLQ=settings.topic_dlq, HOTPATH_SINKS=json.dumps(sinks), **SECRETS,
        **{"HOTPATH_DELIVER_WEB_PORT": "0", **variables})
    with log_file.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "stream.commands.main", "deliver"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


KILL_TEST_TIMING = {"HOTPATH_DELIVERY_REQUEST_TIMEOUT_S": str(WAIT_S), "HOTPATH_DELIVERY_BACKOFF_BASE_S": "0.05"}


def test_a_worker_killed_mid_delivery_delivers_after_restart(hotpath_settings, tmp_path):
    event = escalation_event("prowler-finding-killed", priority="P1")
    key = event["escalation_uid"]
    log_file = tmp_path / "deliver.log"
    with PagerDutyReceiver(ROUTING_KEY) as pd:
        pd.script(HANG)
        produce(hotpath_settings, [event])
        first = deliver_process(hotpath_settings, [pagerduty_sink(pd)], log_file, **KILL_TEST_TIMING)
        try:
            assert pd.hanging.wait(WAIT_S), "the worker never sent the webhook"
        finally:
            first.kill()  # SIGKILL while the request is in flight: no clean-up, no commit
            first.wait(WAIT_S)
        app_id = hotpath_settings.app_id
        pd_lane = [lane_group(app_id, "payments-pd")]
        assert pd.opened(key) == 0 and sum(uncommitted(hotpath_settings, pd_lane).values()) == 1
        pd.release()

        second = deliver_process(hotpath_settings, [pagerduty_sink(pd)], log_file, **KILL_TEST_TIMING)
        try:
            wait_for(lambda: pd.opened(key) == 1 and not uncommitted(hotpath_settings, [lane_group(app_id), *pd_lane]),
                     "the restarted worker delivers and commits")
        finally:
            second.send_signal(signal.SIGTERM)
            code = second.wait(WAIT_S)

    assert code == 0
    assert pd.opened(key) == 1 and len(pd.alerts[key].events) == 1
    lines = log_file.read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert any(entry["msg"] == "delivered" and entry["dedup_key"] == key for entry in entries)
    assert secret_free(log_file.read_text())
