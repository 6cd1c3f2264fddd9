"""The compliance view: failing controls that live traffic exercises now, each with its top escalations."""

from __future__ import annotations

from policy_events import judged, mute

from stream.correlate.compliance import compliance_view

CIS, PCI = "CIS-2.0", "PCI-DSS-4.0"


def test_each_failing_control_lists_its_escalations_most_urgent_first():
    events = [judged("a", priority="P3", score=50.0, compliance={CIS: ["2.1.5"]}),
              judged("b", priority="P1", score=80.0, compliance={CIS: ["2.1.5", "2.1.1"], PCI: ["1.3.1"]}),
              judged("c", priority="P1", score=90.0, compliance={CIS: ["2.1.5"]}, resource="arn:aws:s3:::c")]

    view = compliance_view(events)

    assert list(view) == [CIS, PCI]
    assert list(view[CIS]) == ["2.1.1", "2.1.5"]
    assert [entry["finding_uid"] for entry in view[CIS]["2.1.5"]] == ["c", "b", "a"]
    assert view[CIS]["2.1.5"][0] == {"finding_uid": "c", "resource": "arn:aws:s3:::c", "priority": "P1",
                                     "score": 90.0}
    assert [entry["finding_uid"] for entry in view[PCI]["1.3.1"]] == ["b"]


def test_suppressed_and_resolved_findings_fail_no_control_here_and_a_finding_without_compliance_none():
    events = [judged("muted", state="suppressed", suppressed_by=mute(), compliance={CIS: ["2.1.5"]}),
              judged("gone", state="resolved", compliance={CIS: ["2.1.5"]}),
              judged("plain", compliance={})]

    assert compliance_view(events) == {}


def test_a_control_keeps_only_its_top_escalations():
    events = [judged(f"f{n}", score=float(n), compliance={CIS: ["2.1.5"]}) for n in range(15)]

    top = compliance_view(events, top=3)[CIS]["2.1.5"]

    assert [entry["finding_uid"] for entry in top] == ["f14", "f13", "f12"]
