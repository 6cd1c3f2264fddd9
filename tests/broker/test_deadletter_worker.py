"""A live worker dead-letters a record full of secrets, masked."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from dead_letters import VALIDATOR
from sensitive import API_TOKEN as TOKEN
from sensitive import PAN_GROUPED as PAN
from workers import HotpathProcess, publish, read_topic


@pytest.mark.kafka
def test_the_worker_dead_letters_a_secret_laden_record_masked(hotpath_settings, tmp_path):
    settings = hotpath_settings
    key = f"session_id={TOKEN}".encode()
    value = f'{{"Findings": [{{"card": "{PAN}", "api_key": "{TOKEN}"'.encode()  # cut short: not JSON
    publish(settings, [(settings.topic_findings, key, value)])
    with HotpathProcess("worker", settings, tmp_path) as worker:
        worker.wait_ready()
        ((kafka_key, dead),) = read_topic(settings, settings.topic_dlq, until=lambda records: len(records) >= 1)

    VALIDATOR.validate(dead)
    assert kafka_key == b"session_id=[masked]" and dead["origin"]["key"] == "session_id=[masked]"
    assert dead["value"] == '{"Findings": [{"card": "**** **** **** 1111", "api_key": "[masked]"'
    assert TOKEN not in orjson.dumps(dead).decode() and dead["value_sha256"] == hashlib.sha256(value).hexdigest()
