"""``hotpath demo`` end to end on the live broker: the final screen, and nothing left behind.

The demo runs as a real child process (``python -m stream.commands.main demo``) that starts its own worker and
delivery children; the tests watch those grandchildren with psutil while it runs and check they are
gone afterwards, after a normal end and after Ctrl-C.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psutil
from paths import ROOT

from stream.demo.receiver import PagerDutyReceiver
from stream.demo.scenario import a_year_after
from stream.kafka.clients import admin
from stream.settings import load_settings

ROUTING_KEY = "r" * 32
RULE = "marketing-site-public-bucket"
WEBSITE_BUCKET = "arn:aws:s3:::finpay-www"


def demo(kafka_bootstrap: str, run_dir: Path, *arguments: str) -> subprocess.Popen:
    env = {**os.environ, "HOTPATH_BOOTSTRAP_SERVERS": kafka_bootstrap}
    return subprocess.Popen(
        [sys.executable, "-m", "stream.commands.main", "demo", "--run-dir", str(run_dir), *arguments],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_for_children(proc: subprocess.Popen, count: int, timeout: float = 120.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        children = [c for c in psutil.Process(proc.pid).children() if "stream.commands.main" in " ".join(c.cmdline())]
        if len(children) >= count:
            return children
        time.sleep(0.2)
    raise AssertionError(f"the demo did not start {count} children within {timeout:.0f} s")


def gone(processes: list[psutil.Process]) -> bool:
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def demo_topics(kafka_bootstrap: str, run_id: str) -> list[str]:
    topics = admin(load_settings(bootstrap_servers=kafka_bootstrap)).list_topics(timeout=10).topics
    return [name for name in topics if run_id in name]


def post(url: str, event: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=orjson.dumps(event), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def test_the_pagerduty_stand_in_answers_like_the_events_api_and_folds_incidents():
    receiver = PagerDutyReceiver()
    url = receiver.start()
    try:
        trigger = {"routing_key": ROUTING_KEY, "event_action": "trigger", "dedup_key": "hp-1",
                   "payload": {"summary": "[P1] public bucket", "source": "ledger", "severity": "critical"}}
        assert post(url, trigger) == (202, {"status": "success", "message": "Event processed", "dedup_key": "hp-1"})
        assert post(url, trigger)[0] == 202
        status, body = post(url, {**trigger, "payload": {"summary": "x", "source": "y", "severity": "loud"}})
        assert status == 400 and body["status"] == "invalid event" and "payload.severity" in body["errors"][0]
        assert post(url, {"routing_key": "short", "event_action": "resolve", "dedup_key": "hp-1"})[0] == 400
        assert post(url, {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "hp-1"})[0] == 202
        incidents = receiver.incidents()
        assert list(incidents) == ["hp-1"]
        assert (incidents["hp-1"].triggers, incidents["hp-1"].open) == (2, False)
        assert receiver.refused == 2
        assert all("routing_key" not in event for event in receiver.received())
    finally:
        receiver.stop()


def test_an_unreachable_remote_broker_is_one_clear_line(tmp_path):
    env = {**os.environ, "HOTPATH_BOOTSTRAP_SERVERS": "192.0.2.1:9092"}
    result = subprocess.run([sys.executable, "-m", "stream.commands.main", "demo", "--minutes", "2", "--run-dir",
                             str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "no Kafka broker answers at 192.0.2.1:9092" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_plays_the_scenario_and_shows_the_ranked_escalations(kafka_bootstrap, tmp_path):
    proc = demo(kafka_bootstrap, tmp_path, "--minutes", "3", "--play-seconds", "4", "--settle-seconds", "4")
    children = wait_for_children(proc, 2)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    run_id = re.search(r"run ([0-9a-f]{8})", output).group(1)
    assert "Story check: the ranking matches the scenario's expectation" in output
    rows = re.findall(r"^\s+\d+\s+(P[1-5])\s+([\d.]+)\s+(.+?)\s{2,}", output, flags=re.MULTILINE)
    assert rows and rows[0][0] == "P1"
    assert [p for p, _, _ in rows] == sorted(p for p, _, _ in rows)
    assert {"s3 finpay-prod-statements", "rds ledger-prod"} <= {resource for _, _, resource in rows}
    assert "reached from the internet via payments-api -> ledger" in output
    held = int(re.search(r"held back: (\d+) \(", output).group(1))
    assert held > 2 * len(rows)
    pagerduty = [orjson.loads(line) for line in (tmp_path / run_id / "pagerduty.ndjson").read_bytes().splitlines()]
    assert {event["dedup_key"] for event in pagerduty} and re.search(rf"PagerDuty .*: {len(pagerduty)} events", output)
    siem = [orjson.loads(line) for line in (tmp_path / run_id / "siem.ocsf.ndjson").read_bytes().splitlines()]
    assert siem and {event["class_uid"] for event in siem} == {2004}
    accepted_risk_is_muted_paged_to_no_one_and_audited(output, tmp_path / run_id, pagerduty, siem)
    assert gone(children)
    assert demo_topics(kafka_bootstrap, run_id) == []


def accepted_risk_is_muted_paged_to_no_one_and_audited(output: str, outputs: Path, pagerduty: list[dict],
                                                       siem: list[dict]) -> None:
    """The public website bucket: suppressed by the demo policy's rule, never paged, in the SIEM and the audit trail."""
    today = datetime.now(UTC).date()
    # accepted until a year after the day the scenario starts: today, or yesterday just after midnight
    until = {a_year_after(day).isoformat() for day in (today, today - timedelta(days=1))}
    assert f"suppressed by {RULE} (marketing-team, SEC-1042, until " in output
    escalations = [orjson.loads(line) for line in (outputs / "escalations.ndjson").read_bytes().splitlines()]
    muted = [event for event in escalations if event["resource"] == WEBSITE_BUCKET]
    assert muted and {event["state"] for event in muted} == {"suppressed"}
    assert {event["suppressed_by"]["expires"] for event in muted} <= until
    escalation_uid = muted[0]["escalation_uid"]
    assert not [event for event in pagerduty if event["dedup_key"] == escalation_uid
                and event["event_action"] == "trigger"], "the accepted risk paged someone"
    assert [record["status_id"] for record in siem if record["finding_info"]["uid"] == escalation_uid] == [3]
    audit = [orjson.loads(line) for line in (outputs / "audit.ndjson").read_bytes().splitlines()]
    published = [record for record in audit if record["kind"] == "policy_published"]
    assert len(published) == 1 and published[0]["by"] == "hotpath demo"
    assert [(record["kind"], record["rule_id"], record["owner"], record["ticket"]) for record in audit
            if record.get("finding_uid") == muted[0]["finding_uid"]] == [("suppressed", RULE, "marketing-team",
                                                                           "SEC-1042")]
    assert re.search(r"policy_published .* by hotpath demo", output)
    assert re.search(rf"suppressed +s3 finpay-www, policy version [0-9a-f]{{12}}\n +by {RULE} \(marketing-team, "
                     rf"SEC-1042, until ", output)


def test_ctrl_c_stops_the_demo_and_everything_it_started(kafka_bootstrap, tmp_path):
    proc = demo(kafka_bootstrap, tmp_path, "--minutes", "3", "--play-seconds", "120")
    children = wait_for_children(proc, 2)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "interrupted" in output
    assert gone(children)
    run_id = re.search(r"run ([0-9a-f]{8})", output).group(1)
    assert demo_topics(kafka_bootstrap, run_id) == []
