"""HOTPATH_POLICY_FILES on the real broker: the worker judges by the files it was started with."""

from __future__ import annotations

import pytest
from workers import HotpathProcess, publish_scenario, read_topic

from stream.demo.scenario import build_scenario
from stream.policy.document import load_policy

pytestmark = pytest.mark.kafka

MUTELIST = """\
Mutelist:
  Accounts:
    "*":
      Checks:
        "s3_bucket_public_access":
          Regions: ["*"]
          Resources: ["finpay-prod-statements"]
          Description: statements are public through the CDN by design
"""


def test_the_worker_publishes_what_its_policy_files_mute_as_suppressed(hotpath_settings, tmp_path):
    settings = hotpath_settings
    scenario = build_scenario(seed=11, scale=1, minutes=6)
    mutelist = tmp_path / "mutelist.yaml"
    mutelist.write_text(MUTELIST)
    publish_scenario(settings, scenario)
    with HotpathProcess("worker", settings, tmp_path, policy_files=str(mutelist)) as worker:
        worker.wait_ready()
        records = read_topic(settings, settings.topic_escalations, timeout=120, until=lambda rs: (
            {v["finding_uid"] for _, v in rs} >= set(scenario.expected.escalated)))
    events = [value for _, value in records]
    muted = {e["finding_uid"] for e in events if e["resource"] == "arn:aws:s3:::finpay-prod-statements"
             and e["finding"]["check"] == "s3_bucket_public_access"}
    assert len(muted) == 1
    assert {e["state"] for e in events if e["finding_uid"] in muted} == {"suppressed"}
    assert {e["state"] for e in events if e["finding_uid"] not in muted} <= {"escalated", "updated"}
    assert {e["policy_version"] for e in events} == {load_policy([mutelist]).digest}
