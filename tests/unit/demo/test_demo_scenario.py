"""The seeded fintech scenario: reproducible, decodable by hotpath's own decoders, and, played through
``hotpath replay``, ranked as the story says (internet-reached findings on top, the noise held back)."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from paths import SAMPLES

from stream.commands.main import main
from stream.demo import screen
from stream.demo.estate import INVENTORY_PER_UNIT, MARKETING_SITE_RULE
from stream.demo.scenario import DEMO_POLICY, STREAMS, build_scenario, start_ending_at
from stream.entities.context import Context
from stream.entities.resolve import EntityResolver, service_entity
from stream.ingest.decode import Ingest
from stream.ingest.formats.alerts import decode_alerts
from stream.ingest.formats.findings import decode_findings
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.formats.otlp import decode_traces
from stream.ingest.router import Router
from stream.policy.document import load_policy, read_policy_file
from stream.policy.rules import FindingFacts
from stream.settings import load_settings

STATEMENTS = "arn:aws:s3:::finpay-prod-statements"
KYC_DOCUMENTS = "arn:aws:s3:::finpay-prod-kyc-documents"
EXPORTS = "arn:aws:s3:::finpay-prod-exports"
LEDGER_DB = "arn:aws:rds:us-east-1:482916305771:db:ledger-prod"
FRAUD_TABLE = "arn:aws:dynamodb:us-east-1:482916305771:table/fraud-features"
LEDGER_QUEUE = "arn:aws:sqs:us-east-1:482916305771:ledger-events"
WEBSITE_ASSETS = "arn:aws:s3:::finpay-www"


@pytest.fixture(scope="module")
def scenario():
    return build_scenario(seed=11, minutes=4)


@pytest.fixture(scope="module")
def resolver(scenario) -> EntityResolver:
    resolver = EntityResolver()
    for asset in scenario.assets:
        resolver.add_asset(asset)
    return resolver


def sample(*parts: str):
    path = SAMPLES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"sample {path} not available")
    return json.loads(path.read_text())


def records(values: list[bytes], marker: bytes) -> list[dict]:
    return [orjson.loads(value) for value in values if marker in value]


def replay_events(scenario, folder: Path, *options: str) -> list[dict]:
    files = scenario.write_files(folder)
    out = folder / "escalations.ndjson"
    argv = ["replay", "--out", str(out), *options]
    for name, paths in files.items():
        argv += [f"--{name}", *map(str, paths)]
    assert main(argv) == 0
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def test_a_seed_gives_the_same_bytes_and_another_seed_other_ones():
    first, again, other = (build_scenario(seed=seed, minutes=2) for seed in (3, 3, 4))
    assert first.findings == again.findings
    assert first.trace_batches == again.trace_batches
    assert first.alerts == again.alerts
    assert [a.to_record() for a in first.assets] == [a.to_record() for a in again.assets]
    assert first.expected == again.expected
    assert other.trace_batches != first.trace_batches
    assert other.findings != first.findings


def test_worker_processes_build_the_same_traffic_as_one_process():
    alone = build_scenario(seed=6, minutes=3, workers=1)
    shared = build_scenario(seed=6, minutes=3, workers=2)
    assert shared.trace_batches == alone.trace_batches
    assert shared.times == alone.times


def test_the_demo_plays_a_scenario_ending_now_that_a_worker_with_default_settings_believes_whole():
    now = time.time()
    recent = build_scenario(seed=3, minutes=2, start=start_ending_at(now, 2))
    assert recent.expected == build_scenario(seed=3, minutes=2).expected, "the story does not depend on the date"
    assert now - 3 * 60 < recent.start and recent.end <= now
    ingest = Ingest(Router(Context(), 60.0), DecodeLimits.from_settings(load_settings(), clock=lambda: now))
    for asset in recent.assets:
        ingest("assets", orjson.dumps(asset.to_record()))
    for _, stream, _, value in recent.timeline():
        assert ingest(stream, value).events  # a DecodeError here is a record the demo's worker would dead-letter


def test_every_record_lies_within_the_scenario_in_event_time_order(scenario):
    for stream in STREAMS:
        times = scenario.times[stream]
        assert times == sorted(times)
        assert scenario.start <= times[0] and times[-1] <= scenario.end
    played = list(scenario.timeline())
    assert [ts for ts, *_ in played] == sorted(ts for ts, *_ in played)
    assert Counter(stream for _, stream, _, _ in played) == {
        "findings": len(scenario.findings), "traces": len(scenario.trace_batches), "alerts": len(scenario.alerts)}
    assert [value for _, stream, _, value in played if stream == "alerts"] == scenario.alerts


def test_findings_decode_as_open_prowler_and_security_hub_findings(scenario):
    decoded = [finding for value in scenario.findings for finding in decode_findings(value)]
    expected = scenario.expected
    assert len(decoded) == len(scenario.findings) == expected.total
    assert {f.uid for f in decoded} == set(expected.escalated) | expected.quiet | expected.held
    assert Counter(f.source for f in decoded).keys() == {"prowler", "securityhub"}
    assert {f.status for f in decoded} == {"open"}
    public = [f for f in decoded if f.check == "s3_bucket_public_access" and f.resources == [STATEMENTS]]
    assert len(public) == 1 and public[0].severity == "critical" and expected.escalated[public[0].uid] == "P1"
    # Held findings include critical ones: severity alone does not escalate.
    assert any(f.severity == "critical" for f in decoded if f.uid in expected.held)
    assert len(expected.held) > len(decoded) / 2


def test_prowler_findings_have_every_field_real_prowler_output_has(scenario):
    real = sample("prowler-ocsf", "example_output_aws.ocsf.json")[0]
    ours = records(scenario.findings, b'"Prowler"')[0]
    assert ours.keys() == real.keys()
    for section in ("metadata", "finding_info", "cloud", "unmapped", "remediation"):
        assert ours[section].keys() == real[section].keys(), section
    assert ours["resources"][0].keys() == real["resources"][0].keys()
    assert (ours["class_uid"], ours["type_uid"], ours["metadata"]["version"]) == (2004, 200401, "1.4.0")


def test_security_hub_findings_come_in_the_eventbridge_envelope_with_every_asff_field(scenario):
    envelope = sample("aws-securityhub-asff", "eventbridge-imported_afsbp-ec2.7.json")
    finding = sample("aws-securityhub-asff", "asff_afsbp-s3.8.json")
    ours = records(scenario.findings, b'"aws.securityhub"')
    assert ours and all(event.keys() == envelope.keys() for event in ours)
    assert {event["detail-type"] for event in ours} == {"Security Hub Findings - Imported"}
    ours_finding = ours[0]["detail"]["findings"][0]
    assert finding.keys() <= ours_finding.keys()
    assert finding["Resources"][0].keys() <= ours_finding["Resources"][0].keys()


def test_alerts_decode_and_the_story_alerts_land_on_the_story_services(scenario, resolver):
    decoded = {alert.uid: alert for value in scenario.alerts for alert in decode_alerts(value, resolver)}
    assert len(decoded) == len(scenario.alerts)
    story = {decoded[uid].rule: decoded[uid].entities for uid in scenario.expected.story_alerts}
    assert story == {"Terminal shell in container": [service_entity("payments-api")],
                     "Contact K8S API Server From Container": [service_entity("kyc")]}
    for falco in records(scenario.alerts, b'"output_fields"'):
        assert falco["uuid"] and {"k8s.pod.name", "k8s.ns.name", "container.image.repository"} <= falco[
            "output_fields"].keys()
    finding_resources = {r for value in scenario.findings for f in decode_findings(value) for r in f.resources}
    guardduty = [a for a in decoded.values() if a.source == "guardduty"]
    assert guardduty and all(":instance/i-" in a.entities[0] and a.entities[0] not in finding_resources
                             for a in guardduty)


def test_guardduty_findings_have_the_fields_guardduty_writes(scenario):
    real = sample("aws-guardduty", "detail_guardduty_ec2_event.json")
    events = records(scenario.alerts, b'"GuardDuty Finding"')
    assert events and all(event["source"] == "aws.guardduty" for event in events)
    detail = events[0]["detail"]
    assert real.keys() == detail.keys()
    assert real["resource"]["instanceDetails"].keys() <= detail["resource"]["instanceDetails"].keys()


def test_trace_batches_are_collector_sized_otlp_batches_of_real_sdk_spans(scenario):
    total = 0
    scopes = set()
    for key, value in scenario.trace_batches:
        request = ExportTraceServiceRequest.FromString(value)
        spans = [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
        scopes |= {ss.scope.name for rs in request.resource_spans for ss in rs.scope_spans}
        assert key is None
        assert 256 <= len(spans) <= 1024
        total += len(spans)
    assert total == scenario.span_count
    assert {"opentelemetry.instrumentation.botocore", "opentelemetry.instrumentation.psycopg",
            "opentelemetry.instrumentation.httpx", "opentelemetry.instrumentation.asgi"} <= scopes


def test_traffic_tells_the_story(scenario, resolver):
    callers: dict[str, set[str]] = {}
    internet: Counter[str] = Counter()
    for _, value in scenario.trace_batches:
        for touch in decode_traces(value, resolver).touches:
            callers.setdefault(touch.entity, set()).update(touch.services)
            internet[touch.entity] += touch.internet_spans
    assert set(internet.elements()) == {service_entity("payments-api"), service_entity("website")}
    assert callers[service_entity("ledger")] == {service_entity("payments-api")}
    assert callers[service_entity("fraud-scoring")] == {service_entity("payments-api")}
    assert callers[STATEMENTS] == callers[LEDGER_QUEUE] == {service_entity("ledger")}
    assert callers[LEDGER_DB] == {service_entity("ledger"), service_entity("reporting")}
    assert callers[FRAUD_TABLE] == {service_entity("fraud-scoring")}
    assert callers[KYC_DOCUMENTS] == {service_entity("kyc")}
    assert callers[EXPORTS] == {service_entity("reporting")}
    assert callers[WEBSITE_ASSETS] == {service_entity("website")}
    assert callers[service_entity("kyc")] == set()  # back-office staff on private addresses


def test_partitioned_by_trace_id_every_record_is_one_trace_keyed_by_its_id():
    scenario = build_scenario(seed=5, minutes=2, partition_traces_by_id=True)
    for key, value in scenario.trace_batches:
        request = ExportTraceServiceRequest.FromString(value)
        ids = {span.trace_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans}
        assert ids == {key.decode()}


def test_otlp_json_batches_carry_the_same_touches_as_proto(resolver):
    as_proto = build_scenario(seed=5, minutes=2)
    as_json = build_scenario(seed=5, minutes=2, encoding="otlp_json")

    def touches(scenario, encoding):
        return [sorted(orjson.dumps(t.to_record()) for t in decode_traces(value, resolver, encoding=encoding).touches)
                for _, value in scenario.trace_batches]

    assert touches(as_json, "otlp_json") == touches(as_proto, "otlp_proto")


def test_replay_ranks_internet_reached_findings_first_and_holds_the_noise(scenario, tmp_path):
    events = replay_events(scenario, tmp_path)
    expected = scenario.expected
    current = screen.latest(events)
    rows = screen.ranked(current)
    assert screen.story_problems(expected, current) == []
    assert rows[0]["priority"] == "P1"
    assert {row["finding_uid"] for row in rows[: len(expected.internet_reached)]} == expected.internet_reached
    top = rows[0]
    assert top["reasons"][0].startswith("reached from the internet via payments-api")
    # Held findings are never escalated, not even for a moment.
    assert not {event["finding_uid"] for event in events} & (expected.held | expected.quiet)
    assert len(rows) < len(scenario.findings) / 3
    shown = "\n".join(screen.table(rows) + screen.held_back(len(scenario.findings), rows, expected))
    assert "rds ledger-prod" in shown and f"held back: {len(scenario.findings) - len(rows)}" in shown


def test_scale_grows_traffic_and_entities_and_keeps_the_story(tmp_path):
    small = build_scenario(seed=2, minutes=2)
    large = build_scenario(seed=2, scale=3, minutes=2)
    assert large.span_count > 2 * small.span_count
    assert len(large.assets) >= len(small.assets) + 2 * INVENTORY_PER_UNIT
    assert len(large.findings) > 2 * len(small.findings)
    assert sorted(large.expected.escalated.values()) == sorted(small.expected.escalated.values())
    assert len(large.expected.quiet) > len(small.expected.quiet)  # the internal services scale adds
    events = replay_events(large, tmp_path)
    assert screen.story_problems(large.expected, screen.latest(events)) == []


@pytest.mark.parametrize("arguments", [{"scale": 0}, {"minutes": 1}])
def test_a_scenario_needs_a_scale_and_enough_minutes(arguments):
    with pytest.raises(ValueError):
        build_scenario(**arguments)


def facts_of(finding) -> FindingFacts:
    return FindingFacts(check=finding.check, resource=finding.resources[0], severity=finding.severity, priority="P2",
                        account=finding.account, region=finding.region)


def at_end(scenario) -> datetime:
    return datetime.fromtimestamp(scenario.end, UTC)


def test_the_accepted_risk_is_a_public_bucket_internet_traffic_exercises_that_escalates_without_a_policy(scenario):
    expected = scenario.expected
    [(uid, rule)] = expected.accepted.items()
    assert rule == MARKETING_SITE_RULE
    assert expected.escalated[uid] == "P2" and uid in expected.internet_reached
    [finding] = [f for value in scenario.findings for f in decode_findings(value) if f.uid == uid]
    assert (finding.check, finding.resources, finding.severity) == ("s3_bucket_public_access", [WEBSITE_ASSETS],
                                                                     "critical")
    muted = expected.under_demo_policy()
    assert muted.suppressed == {uid: rule} and uid not in muted.escalated and uid not in muted.internet_reached
    assert muted.total == expected.total


def test_the_demo_policy_mutes_the_accepted_risk_and_nothing_else(scenario, tmp_path):
    shipped = read_policy_file(DEMO_POLICY)
    assert shipped.source.kind == "hotpath" and shipped.warnings == ()
    policy = load_policy([scenario.write_policy(tmp_path)])
    decided = {f.uid: policy.decide(facts_of(f), at_end(scenario))
               for value in scenario.findings for f in decode_findings(value)}
    muted = {uid: decision.muted_by for uid, decision in decided.items() if decision.muted_by}
    assert muted.keys() == scenario.expected.accepted.keys()
    [muting] = muted.values()
    assert (muting.rule.id, muting.rule.owner, muting.rule.ticket) == (MARKETING_SITE_RULE, "marketing-team",
                                                                        "SEC-1042")
    assert muting.rule.reason.startswith("Serves the public marketing website")


def test_the_risk_the_demo_plays_today_is_accepted_for_a_year_from_today(tmp_path):
    now = time.time()
    recent = build_scenario(seed=3, minutes=2, start=start_ending_at(now, 2))
    policy_file = read_policy_file(recent.write_policy(tmp_path))
    [rule] = policy_file.document.mute
    today = datetime.fromtimestamp(recent.start, UTC).date()
    assert rule.expires == today.replace(year=today.year + 1)
    assert policy_file.warnings == ()
    policy = load_policy([Path(policy_file.source.path)])
    [finding] = [f for value in recent.findings for f in decode_findings(value) if f.uid in recent.expected.accepted]
    assert policy.decide(facts_of(finding), datetime.fromtimestamp(now, UTC)).muted_by is not None
    after = datetime.combine(rule.expires + timedelta(days=1), datetime.min.time(), UTC)
    assert policy.decide(facts_of(finding), after).muted_by is None, "the mute ends after its expiry day"
    # The file in the repository, dated for the default day, differs only in that date.
    assert recent.policy_text().replace(str(rule.expires), "") == DEMO_POLICY.read_text().replace(
        str(read_policy_file(DEMO_POLICY).document.mute[0].expires), "")


def test_under_the_demo_policy_the_accepted_risk_is_suppressed_never_escalated_and_the_rest_unchanged(scenario,
                                                                                                    tmp_path):
    without = screen.latest(replay_events(scenario, tmp_path / "without"))
    audit_out = tmp_path / "audit.ndjson"
    events = replay_events(scenario, tmp_path / "with", "--policy", str(scenario.write_policy(tmp_path)),
                           "--audit-out", str(audit_out))
    current = screen.latest(events)
    expected = scenario.expected.under_demo_policy()
    assert screen.story_problems(expected, current) == []
    [(uid, rule)] = expected.suppressed.items()
    assert {event["state"] for event in events if event["finding_uid"] == uid} == {"suppressed"}
    assert current[uid]["priority"] == scenario.expected.escalated[uid], "muted, but scored as before"
    assert [row["finding_uid"] for row in screen.ranked(current)] == [
        row["finding_uid"] for row in screen.ranked(without) if row["finding_uid"] != uid]
    shown = "\n".join(screen.accepted_risks(screen.muted(current)))
    assert "s3 finpay-www" in shown
    assert f"suppressed by {rule} (marketing-team, SEC-1042, until 2026-06-03)" in shown
    escalation = current[uid]["escalation_uid"]
    assert screen.story_problems(expected, current, paged={escalation}) == [
        f"paged although the policy accepts the risk: {uid}"]
    assert {f"escalated at P2 but should stay suppressed: {uid}",
            f"not suppressed, expected muted by {rule}: {uid}"} <= set(screen.story_problems(expected, without))
    [audit] = [orjson.loads(line) for line in audit_out.read_bytes().splitlines()]
    assert (audit["kind"], audit["finding_uid"], audit["rule_id"], audit["expires"]) == ("suppressed", uid, rule,
                                                                                         "2026-06-03")
    assert screen.audit_trail([audit])[1].strip() == f"by {rule} (marketing-team, SEC-1042, until 2026-06-03)"
