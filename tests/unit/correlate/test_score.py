"""The score: bounded, monotonic in evidence, held when unexercised, and explained in words."""

from hypothesis import given
from hypothesis import strategies as st

from stream.correlate.score import AlertEvidence, Evidence, reasons, score
from stream.models import SEVERITIES
from stream.settings import ScoreSettings

WEIGHTS = ScoreSettings()

alerts = st.builds(
    AlertEvidence,
    uid=st.uuids().map(str),
    source=st.sampled_from(["falco", "guardduty"]),
    rule=st.sampled_from(["Terminal shell in container", "UnauthorizedAccess:EC2/TorClient"]),
    severity=st.sampled_from(SEVERITIES),
    age_s=st.floats(min_value=0, max_value=86_400),
    subject=st.just("payments-api-7d9f"),
    on_entity=st.booleans(),
)
evidences = st.builds(
    Evidence,
    severity=st.sampled_from(SEVERITIES),
    span_count=st.integers(min_value=0, max_value=100_000),
    internet_direct=st.booleans(),
    exposure_path=st.sampled_from([(), ("service:payments-api", "arn:aws:s3:::x")]),
    alerts=st.lists(alerts, max_size=4).map(tuple),
    data_classification=st.sampled_from([None, "public", "internal", "confidential", "pii", "pci"]),
    criticality=st.sampled_from([None, "low", "medium", "high", "critical"]),
)
ORDER_DATA = [None, "public", "internal", "confidential", "pii", "pci"]
ORDER_CRIT = [None, "low", "medium", "high", "critical"]


def _more(e: Evidence, data) -> Evidence:
    """Evidence that contains everything in ``e`` and possibly more."""
    extra_alerts = data.draw(st.lists(alerts, max_size=2).map(tuple))
    return Evidence(
        severity=e.severity,
        span_count=e.span_count + data.draw(st.integers(min_value=0, max_value=5000)),
        internet_direct=e.internet_direct or data.draw(st.booleans()),
        exposure_path=e.exposure_path or data.draw(st.sampled_from([(), ("service:a", "x")])),
        alerts=e.alerts + extra_alerts,
        data_classification=ORDER_DATA[data.draw(st.integers(ORDER_DATA.index(e.data_classification), 5))],
        criticality=ORDER_CRIT[data.draw(st.integers(ORDER_CRIT.index(e.criticality), 4))],
    )


@given(evidences, st.data())
def test_more_evidence_never_lowers_the_score(evidence, data):
    assert score(_more(evidence, data), WEIGHTS).value >= score(evidence, WEIGHTS).value


@given(evidences)
def test_score_is_bounded_and_priority_follows_thresholds(evidence):
    result = score(evidence, WEIGHTS)
    assert 0 <= result.value <= 100
    expected = next(p for p, floor in (("P1", 75), ("P2", 60), ("P3", 45), ("P4", 25), ("P5", 0))
                    if result.value >= floor)
    assert result.priority == expected


@given(evidences)
def test_unexercised_finding_without_attack_on_it_is_held_below_p3(evidence):
    unexercised = Evidence(evidence.severity, 0, evidence.internet_direct, evidence.exposure_path,
                           tuple(a for a in evidence.alerts if not a.on_entity),
                           evidence.data_classification, evidence.criticality)
    result = score(unexercised, WEIGHTS)
    assert result.held
    assert result.priority in ("P4", "P5")


def test_attack_on_the_resource_lifts_the_hold():
    shell = AlertEvidence("a1", "falco", "Terminal shell in container", "critical", 60, "ledger-0", True)
    held = score(Evidence("critical", data_classification="pci", criticality="critical"), WEIGHTS)
    attacked = score(Evidence("critical", alerts=(shell,), data_classification="pci", criticality="critical"), WEIGHTS)
    assert held.held and held.priority == "P4"
    assert not attacked.held and attacked.priority in ("P1", "P2")


def test_public_bucket_reached_from_internet_under_attack_is_p1_and_says_why():
    shell = AlertEvidence("f-1", "falco", "Terminal shell in container", "critical", 180, "payments-api-7d9f", False)
    evidence = Evidence("high", span_count=1200,
                        exposure_path=("service:payments-api", "service:ledger", "arn:aws:s3:::statements"),
                        alerts=(shell,), data_classification="pci", criticality="critical")
    result = score(evidence, WEIGHTS)
    assert result.priority == "P1"
    words = reasons(evidence, result)
    assert "reached from the internet via payments-api -> ledger" in words
    assert "Falco: Terminal shell in container on payments-api-7d9f 3 min ago" in words
    assert set(result.contributions) == {"severity", "exercised", "volume", "internet", "attack", "data", "criticality"}


def test_alerts_weigh_less_as_they_age():
    def attack(age):
        alert = AlertEvidence("a", "guardduty", "Recon", "high", age, "i-1", True)
        return score(Evidence("low", span_count=10, alerts=(alert,)), WEIGHTS).contributions["attack"]

    assert attack(0) > attack(3600) > attack(4 * 3600)
