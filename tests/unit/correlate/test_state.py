"""The entity state's codec: exact round trips, old JSON states still load, and a small size per entity."""

from __future__ import annotations

import statistics

import msgpack
import pytest

import stream.correlate.replay as replay_module
from stream.correlate.lifecycle import EscalationState
from stream.correlate.state import AlertSeen, Bucket, EntityState, FindingState, decode, encode
from stream.demo.scenario import build_scenario
from stream.settings import Settings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"

# A state as the JSON codec before this one wrote it to the changelog (keys p, pos, esc; positional lists).
OLD_JSON_STATE = (
    b'{"clock":1748941290.5,"last_exercised":1748941290.5,"buckets":[[1748941260.0,12,1,3]],'
    b'"callers":{"service:checkout":1748941290.5},"via":{},"traces":["4bf92f3577b34da6a3ce929d0e0e4736"],'
    b'"first_seen":1748941201.25,"alerts":[[1748941280.0,"gd-1","guardduty","Exfiltration:S3/Anomalous","high",""]],'
    b'"findings":{"f-1":{"source":"prowler","check":"s3_public","title":"Bucket is public","severity":"critical",'
    b'"status":"open","resources":["arn:aws:s3:::vault"],"account":"482916305771","region":"us-east-1",'
    b'"observed_at":"2025-06-03T09:00:34Z","esc":[2,true,"P1",91.5]},"f-2":{"source":"securityhub","check":"c",'
    b'"title":"t","severity":"low","status":"open","resources":["arn:aws:s3:::vault"],"account":null,"region":null,'
    b'"observed_at":"2025-06-03T09:00:35Z","esc":null}},"p":3,"pos":166}'
)


NEVER_ESCALATED = EscalationState()


def finding(escalation: EscalationState = NEVER_ESCALATED, **fields) -> FindingState:
    return FindingState(**({"source": "prowler", "check": "s3_public", "title": "Bucket is public",
                            "severity": "critical", "status": "open", "resources": ["arn:aws:s3:::vault"],
                            "account": "482916305771", "region": "us-east-1",
                            "observed_at": "2025-06-03T09:00:34Z"} | fields), escalation=escalation)


def test_an_old_json_state_loads_field_for_field():
    assert decode(OLD_JSON_STATE) == EntityState(
        clock=1748941290.5, last_exercised=1748941290.5, first_seen=1748941201.25,
        buckets=[Bucket(1748941260.0, 12, 3)], callers={"service:checkout": 1748941290.5}, via={},
        traces=[TRACE], alerts=[AlertSeen(1748941280.0, "gd-1", "guardduty", "Exfiltration:S3/Anomalous", "high", "")],
        findings={"f-1": finding(EscalationState(2, True, "P1", 91.5)),
                  "f-2": finding(source="securityhub", check="c", title="t", severity="low", account=None, region=None,
                                 observed_at="2025-06-03T09:00:35Z")},
        partition=3, position=166)


def test_a_loaded_old_state_round_trips_through_the_new_codec():
    state = decode(OLD_JSON_STATE)
    assert decode(encode(state)) == state


@pytest.mark.parametrize("trace", [TRACE, TRACE.upper(), "not-hex-" + TRACE[8:], "abc", "0" * 32])
def test_trace_ids_come_back_exactly_whatever_they_are(trace):
    state = EntityState(traces=[trace, TRACE])
    assert decode(encode(state)).traces == [trace, TRACE]


def test_an_empty_state_and_times_keep_their_types():
    assert decode(encode(EntityState())) == EntityState()
    state = EntityState(clock=100, first_seen=99.5, buckets=[Bucket(60, 1, 0)], partition=0, position=0)
    back = decode(encode(state))
    assert back == state and type(back.clock) is int and type(back.first_seen) is float


def test_a_finding_keeps_its_compliance_and_remediation_through_the_codec():
    remediation = {"description": "Block public access", "references": ["https://docs.aws.amazon.com/s3/bpa"]}
    compliance = {"CIS-2.0": ["2.1.5"], "PCI DSS v4.0.1": ["1.3.1"]}
    state = EntityState(findings={
        "f-1": finding(EscalationState(2, True, "P1", 91.5), compliance=compliance, remediation=remediation),
        "f-2": finding()})
    back = decode(encode(state))
    assert back == state
    assert back.findings["f-1"].compliance == compliance
    assert back.findings["f-1"].remediation == remediation


def test_a_state_of_the_format_before_compliance_loads_with_none():
    # format 1: nine finding fields, then the escalation's four when it was escalated
    fields = ["prowler", "s3_public", "Bucket is public", "critical", "open", ["arn:aws:s3:::vault"], "482916305771",
              "us-east-1", "2025-06-03T09:00:34Z"]
    old = msgpack.packb([1, 5.0, None, None, 3, 166, [], {}, {}, [], [],
                         {"f-1": [*fields, 2, True, "P1", 91.5], "f-2": fields}])
    assert decode(old).findings == {"f-1": finding(EscalationState(2, True, "P1", 91.5)), "f-2": finding()}
    assert decode(old).findings["f-1"].compliance == {} and decode(old).findings["f-1"].remediation is None


def test_a_state_in_an_unknown_format_is_refused():
    encoded = bytearray(encode(EntityState()))
    encoded[1] = 3  # the format number, right after the array header
    with pytest.raises(ValueError, match="format 3"):
        decode(bytes(encoded))


def test_entity_states_of_the_demo_take_at_most_576_bytes_at_the_median(monkeypatch, tmp_path):
    stores = []

    class Recording(replay_module.EncodedStates):
        def __init__(self):
            stores.append(self)
            super().__init__()

    monkeypatch.setattr(replay_module, "EncodedStates", Recording)
    files = build_scenario(seed=2, scale=3, minutes=3).write_files(tmp_path)
    assert list(replay_module.replay(Settings(), clock=lambda: 0.0, **files))
    encoded = list(stores[0].data.values())
    assert len(encoded) > 100
    assert all(encode(decode(state)) == state for state in encoded)
    # JSON: 610 B without compliance and remediation; this codec 365 B without them, 524 B with them
    assert statistics.median(len(state) for state in encoded) <= 576
