"""What a responder reads in the dead letter when a sink redirects or echoes the request: the delivery
service on the live broker, sending to the real receivers of tests/support/receivers.py; never the routing
key, never a card number."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import orjson
import pytest
from receivers import ROUTING_KEY, PagerDutyReceiver, escalation_event
from sensitive import PAN

from stream.deliver.registry import sink_clients
from stream.deliver.service import DeliveryService
from stream.kafka import clients as kafka
from stream.settings import Settings, SinkSettings

WAIT_S = 60.0


async def deliver_until_dead_lettered(settings: Settings, event: dict) -> dict:
    """Run the delivery service on ``event`` until it writes a dead letter; that dead letter."""
    producer = kafka.producer(settings)
    producer.produce(settings.topic_escalations, key=event["finding_uid"].encode(), value=orjson.dumps(event))
    assert producer.flush(30) == 0
    service = DeliveryService(settings, sink_clients(settings, {"PD_ROUTING_KEY": ROUTING_KEY}))
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))
    deadline = time.monotonic() + WAIT_S
    while (not service.metrics.value("hotpath_deliver_dead_lettered_total", sink="payments-pd")
           and time.monotonic() < deadline and not running.done()):
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(running, WAIT_S)
    consumer = kafka.consumer(settings, f"reader-{uuid.uuid4().hex}", enable_auto_commit=False,
                              auto_offset_reset="earliest")
    consumer.subscribe([settings.topic_dlq])
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(10, 0.5):
                if message.error() is None:
                    return json.loads(message.value())
    finally:
        consumer.close()
    raise AssertionError("no dead letter was written")


def pagerduty_settings(settings: Settings, url: str) -> Settings:
    sinks = [SinkSettings(name="payments-pd", kind="pagerduty", url=url, secret_env="PD_ROUTING_KEY")]
    return settings.model_copy(update={"sinks": sinks, "delivery_retry_budget": 0})


async def test_a_redirect_to_another_host_never_receives_the_routing_key(hotpath_settings):
    with PagerDutyReceiver(ROUTING_KEY) as first, PagerDutyReceiver(ROUTING_KEY) as elsewhere:
        first.script((307, None, {"Location": elsewhere.enqueue_url}))

        letter = await deliver_until_dead_lettered(pagerduty_settings(hotpath_settings, first.enqueue_url),
                                                   escalation_event(priority="P1"))

        assert len(first.requests) == 1 and elsewhere.requests == []
    assert letter["reason"].startswith("sink payments-pd (pagerduty): permanent failure: HTTP 307: ")
    assert "redirects are not followed" in letter["reason"]


class EchoingPagerDuty(PagerDutyReceiver):
    """Refuses every event with a 400 that quotes, after ``lead`` characters of explanation, the request."""

    def __init__(self, routing_key: str, lead: int):
        super().__init__(routing_key)
        self.lead = lead

    def process(self, request):
        echo = f"{'field is invalid; ' * 40}"[: self.lead] + f" card {PAN} in request: {request.body.decode()}"
        return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": [echo]}, {}


@pytest.mark.parametrize("lead", [390, 440])  # the key, then the card number, across the old cut at 500
async def test_a_reason_quoting_the_request_keeps_no_part_of_the_routing_key_or_a_card_number(hotpath_settings, lead):
    with EchoingPagerDuty(ROUTING_KEY, lead) as receiver:
        letter = await deliver_until_dead_lettered(pagerduty_settings(hotpath_settings, receiver.enqueue_url),
                                                   escalation_event(priority="P1"))

    reason = letter["reason"]
    assert reason.startswith("sink payments-pd (pagerduty): permanent failure: HTTP 400: Event object is invalid")
    fragments = [ROUTING_KEY[start:start + 4] for start in range(len(ROUTING_KEY) - 3)]
    assert [fragment for fragment in fragments if fragment in reason] == []
    assert PAN[:6] not in reason and len(reason) <= 500
