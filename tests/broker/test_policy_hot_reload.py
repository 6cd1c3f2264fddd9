"""Hot reload on the real broker: a running worker applies each version published on hotpath.policy without a
restart (a mute suppresses the finding's next event, removing it re-escalates), records the audit trail on
hotpath.audit, and serves the compliance view behind the same token as /escalations."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from policy_events import NOTHING_MUTED, policy_file
from waiting import settle
from workers import HotpathProcess, publish_scenario, read_topic, run_hotpath

from stream.demo.scenario import build_scenario
from stream.policy.document import load_policy

pytestmark = pytest.mark.kafka
TOKEN = "compliance-view-token"


def mute_of(event: dict) -> str:
    """A policy file muting the finding of ``event`` on its resource, and nothing else."""
    return (f"version: 1\nmute:\n  - id: accepted-risk\n    match:\n"
            f"      checks: ['{re.escape(event['finding']['check'])}']\n"
            f"      resources: ['{re.escape(event['resource'])}']\n"
            f"    owner: payments-team\n    reason: behind the WAF, reviewed\n    ticket: RISK-7\n"
            f"    expires: 2099-12-31\n")


def events_until(settings, topic: str, found) -> list[dict]:
    records = read_topic(settings, topic, until=lambda got: found([value for _, value in got]) is not None,
                         timeout=90)
    return [value for _, value in records]


def latest_of(uid: str, predicate):
    return lambda events: next((e for e in reversed(events) if e.get("finding_uid") == uid and predicate(e)), None)


def get(worker: HotpathProcess, path: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}{path}",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_published_mute_suppresses_without_a_restart_and_its_removal_re_escalates(hotpath_settings, tmp_path):
    settings = hotpath_settings
    scenario = build_scenario(seed=11, scale=1, minutes=6)
    publish_scenario(settings, scenario)
    with HotpathProcess("worker", settings, tmp_path, web_token=TOKEN) as worker:
        worker.wait_ready()
        events = settle(settings, scenario.expected.escalated)
        target = next(e for e in reversed(events) if e["state"] in ("escalated", "updated"))
        uid = target["finding_uid"]
        muting = policy_file(tmp_path, "risk.yaml", mute_of(target))
        muted_version = load_policy([muting]).digest

        assert run_hotpath(["policy", "publish", str(muting), "--by", "alice"], settings, tmp_path)[0] == 0

        found = latest_of(uid, lambda e: e["state"] == "suppressed")
        suppressed = found(events_until(settings, settings.topic_escalations, found))
        assert suppressed["suppressed_by"] == {
            "rule_id": "accepted-risk", "source": "hotpath.policy", "policy_version": muted_version,
            "owner": "payments-team", "reason": "behind the WAF, reviewed", "ticket": "RISK-7", "expires": "2099-12-31"}
        assert suppressed["policy_version"] == muted_version
        status, view = get(worker, "/escalations", TOKEN)
        assert status == 200 and any(e["finding_uid"] == uid and e["state"] == "suppressed"
                                     for e in view["escalations"])

        (tmp_path / "next").mkdir()
        lifted = policy_file(tmp_path / "next", "risk.yaml", NOTHING_MUTED)
        assert run_hotpath(["policy", "publish", str(lifted), "--by", "bob"], settings, tmp_path)[0] == 0

        found = latest_of(uid, lambda e: "suppression_ended" in e)
        again = found(events_until(settings, settings.topic_escalations, found))
        assert again["suppression_ended"] == {"rule_id": "accepted-risk", "why": "removed"}
        assert again["state"] in ("escalated", "updated") and again["priority"] == target["priority"]
        assert again["policy_version"] == load_policy([lifted]).digest

        found = latest_of(uid, lambda record: record["kind"] == "unsuppressed")
        trail = events_until(settings, settings.topic_audit, found)
        assert [(r["kind"], r.get("by")) for r in trail if r["kind"] == "policy_published"] == [
            ("policy_published", "alice"), ("policy_published", "bob")]
        (muted,) = [r for r in trail if r["kind"] == "suppressed"]
        assert (muted["finding_uid"], muted["rule_id"], muted["owner"], muted["ticket"], muted["policy_version"]) == (
            uid, "accepted-risk", "payments-team", "RISK-7", muted_version)
        (unmuted,) = [r for r in trail if r["kind"] == "unsuppressed"]
        assert (unmuted["why"], unmuted["owner"], unmuted["reason"]) == (
            "removed", "payments-team", "behind the WAF, reviewed")

        assert get(worker, "/compliance")[0] == 401
        status, view = get(worker, "/compliance", TOKEN)
        assert status == 200 and isinstance(view["compliance"], dict)
        assert worker.proc.poll() is None, "the worker was not restarted"
