"""The escalation event: one model that the correlator builds, the topic carries and the schema file describes."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator
from paths import SCHEMAS

from stream.correlate.event import SCHEMA_PATH, escalation_schema
from stream.correlate.replay import replay
from stream.deliver.escalation import escalation_from_dict, masked_event
from stream.demo.scenario import build_scenario
from stream.models import DecodeError
from stream.settings import Settings

# Written by the correlator of commit b61efec (which built the event as a dict by hand) on the demo
# scenario below, masked as the worker publishes it, with the wall clock stopped at EMITTED_AT; regenerated
# once for issue 17, whose only change to these events is "policy_version": null at the end of each.
GOLDEN = Path(__file__).parent / "golden" / "demo-seed11-escalations.ndjson"
EMITTED_AT = 1_800_000_000.0


def schema_validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMA_PATH.read_text()), format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def demo_events(tmp_path_factory) -> list[dict]:
    files = build_scenario(seed=11, minutes=4).write_files(tmp_path_factory.mktemp("demo"))
    # judged record by record, as the correlator of b61efec was driven
    events = replay(Settings(), clock=lambda: EMITTED_AT, chunk_records=1, **files)
    return [masked_event(event) for event in events]


def test_the_topic_carries_the_same_bytes_as_before_the_model(demo_events):
    assert b"".join(orjson.dumps(event) + b"\n" for event in demo_events) == GOLDEN.read_bytes()


def test_previous_priority_is_on_updated_events_only(demo_events):
    states = {event["state"]: "previous_priority" in event for event in demo_events}
    assert states == {"escalated": False, "updated": True}


def test_the_schema_file_is_the_one_the_model_generates():
    assert SCHEMA_PATH == SCHEMAS / "escalation.schema.json"
    assert SCHEMA_PATH.read_text() == escalation_schema(), "run: python -m stream.correlate.event"


def test_every_event_the_correlator_builds_is_valid_for_the_schema_and_the_sinks(demo_events):
    schema = schema_validator()
    for event in demo_events:
        schema.validate(event)
        assert escalation_from_dict(event).record() == event


@pytest.mark.parametrize(("where", "change"), [
    ("state", {"state": "reopened"}),
    ("escalation_uid", {"escalation_uid": "hp-not-a-digest"}),
    ("version", {"version": 0}),
    ("score", {"score": 100.5}),
    ("reasons", {"reasons": []}),
    ("event_time", {"event_time": "yesterday"}),
])
def test_schema_and_sinks_refuse_the_same_broken_events(demo_events, where, change):
    schema = schema_validator()
    broken = demo_events[0] | change
    assert not schema.is_valid(broken)
    with pytest.raises(DecodeError, match=where):
        escalation_from_dict(broken)


def test_the_schema_keeps_the_values_hotpath_writes_that_readers_tolerate(demo_events):
    schema = schema_validator()
    event = demo_events[0]
    for broken in (event | {"finding": event["finding"] | {"source": "nessus"}},
                   event | {"factors": event["factors"] | {"criticality": "extreme"}},
                   event | {"extra": 1}):
        assert not schema.is_valid(broken)
        escalation_from_dict(broken)  # a reader is tolerant, as it was


def test_an_event_written_before_compliance_still_reads_and_validates(demo_events):
    event = demo_events[1]
    before = event | {"finding": {key: value for key, value in event["finding"].items()
                                  if key not in ("compliance", "remediation")}}

    schema_validator().validate(before)
    finding = escalation_from_dict(before).finding
    assert finding.compliance == {} and finding.remediation is None


def test_a_reader_keeps_only_web_links_and_masks_the_advice(demo_events):
    event = demo_events[1]
    advice = {"description": "rotate api_key=AKIA0123456789ABCDEF now",
              "references": ["file:///etc/passwd", "javascript:alert(1)", "https://docs.aws.amazon.com/fix"]}
    read = escalation_from_dict(event | {"finding": event["finding"] | {"remediation": advice}}).finding.remediation

    assert read.references == ["https://docs.aws.amazon.com/fix"]
    assert "AKIA0123456789ABCDEF" not in read.description


def test_every_demo_escalation_names_the_controls_its_finding_fails(demo_events):
    assert all(event["finding"]["compliance"] for event in demo_events)
    by_source = {event["finding"]["source"]: event["finding"] for event in demo_events}
    assert by_source["securityhub"]["remediation"]["references"][0].startswith("https://docs.aws.amazon.com/")
