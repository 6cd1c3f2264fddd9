"""Hostile records refused by the running worker with a reason, its memory staying flat.

A 50 MB JSON finding and an OTLP message with a million tiny attributes are produced to a live
worker's input topics. Both must land in the dead-letter topic with the reason and their origin,
and the worker's resident memory (psutil on the child process) must stay flat: within 30 MB of what
it was before once the 50 MB record has been refused and the next record on its topic handled
(until then Faust's stream iterator still references the last event), within the decoder's
transient peak after a flood, and not growing as more floods follow.

Where the 50 MB record would otherwise be stopped: the findings topic's ``max.message.bytes`` is
the broker default, 1 MB, and the traces topic's 8 MB; so is the producer's ``message.max.bytes``.
The test raises both for its own findings topic, so the record really reaches the worker, where
``HOTPATH_MAX_RECORD_BYTES`` (8 MB) refuses it before any parsing.
"""

from __future__ import annotations

import time

import orjson
import psutil
import pytest
from brokers import allow_large_records
from dead_letters import dead_letters_of
from hostile import FIFTY_MB, fifty_megabyte_finding
from otlp_messages import wire_field
from sensitive import PAN
from workers import HotpathProcess, publish_scenario, read_topic

from stream.demo.scenario import build_scenario
from stream.kafka.clients import producer

RSS_SLACK = 30 * 1024 * 1024
# Refusing the flood counts its million entries: a transient ~50 MB that the allocator may keep for reuse.
FLOOD_PEAK = 50 * 1024 * 1024
FLOODS = 5
SETTLE_S = 3.0


def million_tiny_attributes() -> bytes:
    """One span with a million empty attributes (two bytes each on the wire), as protobuf."""
    span = wire_field(0x0A, b"\x01" * 16) + wire_field(0x12, b"\x02" * 8) + b"\x4a\x00" * 1_000_000
    return wire_field(0x0A, wire_field(0x12, wire_field(0x12, span)))


def resident_after_quiet(process: psutil.Process) -> int:
    """RSS once the worker has had a few seconds to drop what it no longer holds."""
    time.sleep(SETTLE_S)
    return process.memory_info().rss


@pytest.mark.kafka
def test_worker_dead_letters_hostile_records_and_its_memory_stays_flat(hotpath_settings, tmp_path):
    settings = hotpath_settings
    allow_large_records(settings, settings.topic_findings, FIFTY_MB + 1024 * 1024)
    scenario = build_scenario(seed=11, scale=1, minutes=6)
    publish_scenario(settings, scenario)
    bad_kind = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "ab" * 16, "kind": f"card {PAN}"}]}]}]}
    with HotpathProcess("worker", settings, tmp_path) as worker:
        worker.wait_ready()
        read_topic(settings, settings.topic_escalations,
                   until=lambda records: len(records) >= len(scenario.expected.escalated))
        process = psutil.Process(worker.proc.pid)
        before = resident_after_quiet(process)

        # Each hostile record is followed by the next record on its topic, as in any live stream:
        # Faust's stream iterator keeps the last event it handed out until then.
        writer = producer(settings, message_max_bytes=FIFTY_MB + 1024 * 1024)
        writer.produce(settings.topic_findings, key=b"huge", value=fifty_megabyte_finding())
        writer.produce(settings.topic_findings, key=b"next-finding", value=b"{}")
        assert writer.flush(60) == 0
        dead = dead_letters_of(settings, {b"huge", b"next-finding"})
        after_huge = resident_after_quiet(process)

        after_floods = []
        for round_floods, marker in ((range(1), b"pan"), (range(1, FLOODS), b"pan-again")):
            for flood in round_floods:
                writer.produce(settings.topic_traces, key=b"flood-%d" % flood, value=million_tiny_attributes())
            writer.produce(settings.topic_traces, key=marker, value=orjson.dumps(bad_kind))
            assert writer.flush(60) == 0
            dead |= dead_letters_of(settings, {marker} | {b"flood-%d" % flood for flood in round_floods})
            after_floods.append(resident_after_quiet(process))
        assert worker.proc.poll() is None, worker.log_tail()

    assert dead[b"huge"]["reason"] == (f"record is {FIFTY_MB} bytes, over the 8388608-byte limit "
                                       "(HOTPATH_MAX_RECORD_BYTES)")
    assert (dead[b"huge"]["origin"]["topic"], dead[b"huge"]["value_bytes"], dead[b"huge"]["value_truncated"]) == (
        settings.topic_findings, FIFTY_MB, True)
    for flood in range(FLOODS):
        assert dead[b"flood-%d" % flood]["reason"] == (
            "a span has 1000000 attributes, over the 512-attribute limit (HOTPATH_MAX_ATTRIBUTES_PER_SPAN)")
    assert PAN not in dead[b"pan"]["reason"] and f"card {'*' * 12}{PAN[-4:]}" in dead[b"pan"]["reason"]
    first_flood, all_floods = (rss - before for rss in after_floods)
    print(f"worker RSS {before / 2**20:.1f} MiB; after the 50 MB record {(after_huge - before) / 2**20:+.1f} MiB, "
          f"after one flood {first_flood / 2**20:+.1f} MiB, after {FLOODS} {all_floods / 2**20:+.1f} MiB")
    assert after_huge - before < RSS_SLACK
    assert first_flood < FLOOD_PEAK + RSS_SLACK
    assert all_floods - first_flood < RSS_SLACK, "memory grows with every hostile record"
