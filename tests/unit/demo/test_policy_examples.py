"""The README's policy examples are files hotpath reads, and they do what the README says they do."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from paths import ROOT

from stream.commands.main import main
from stream.deliver.escalation import escalation_from_dict
from stream.deliver.routing import skip_reason
from stream.demo.scenario import build_scenario
from stream.policy.document import load_policy
from stream.policy.rules import FindingFacts, Policy
from stream.settings import SinkSettings

ACCOUNT = "482916305771"
SECTION = "## Policy as code"


def readme_blocks(language: str) -> list[str]:
    """The README's code blocks in ``language`` in its policy section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION):]
    section = section[: section.find("\n## ", len(SECTION))]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def readme_yaml(opening: str) -> str:
    """The README's first YAML block in its policy section that starts with ``opening``."""
    return next(block for block in readme_blocks("yaml") if block.startswith(opening))


def readme_sinks() -> list[SinkSettings]:
    """The sinks of the README's ``export HOTPATH_SINKS='...'`` beside the worked example."""
    [value] = [re.search(r"HOTPATH_SINKS='(.*?)'", block, flags=re.DOTALL).group(1)
               for block in readme_blocks("sh") if "HOTPATH_SINKS=" in block]
    return [SinkSettings(**sink) for sink in orjson.loads(value)]


def example(tmp_path: Path, opening: str) -> Path:
    path = tmp_path / "example.yaml"
    path.write_text(readme_yaml(opening))
    return path


def facts(**given) -> FindingFacts:
    defaults = dict(check="s3_bucket_public_access", resource="arn:aws:s3:::finpay-www", severity="critical",
                    priority="P2", account=ACCOUNT, region="us-east-1", environment="prod")
    return FindingFacts(**{**defaults, **given})


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return load_policy([example(tmp_path, "version: 1")])


@pytest.fixture
def mutelist(tmp_path: Path) -> Policy:
    return load_policy([example(tmp_path, "Mutelist:")])


@pytest.mark.parametrize("opening", ["version: 1", "Mutelist:"])
def test_policy_check_passes_each_example(tmp_path, capsys, opening):
    assert main(["policy", "check", str(example(tmp_path, opening))]) == 0
    assert ": ok: " in capsys.readouterr().out


def test_the_mute_holds_through_its_expiry_day_and_ends_after_it(policy):
    muted = policy.decide(facts(), datetime(2027, 6, 30, 23, 59, tzinfo=UTC)).muted_by
    assert muted is not None and (muted.rule.owner, muted.rule.ticket) == ("marketing-team", "SEC-1042")
    after = policy.decide(facts(), datetime(2027, 7, 1, tzinfo=UTC))
    assert after.muted_by is None and [m.rule.id for m in after.expired] == ["marketing-site-public-bucket"]
    assert policy.decide(facts(attacked_directly=True), datetime(2027, 1, 1, tzinfo=UTC)).muted_by is None


def test_nothing_in_dev_pages_above_p3(policy):
    at = datetime(2027, 1, 1, tzinfo=UTC)
    decision = policy.decide(facts(resource="arn:aws:s3:::finpay-dev-uploads", environment="dev", priority="P1"), at)
    assert (decision.priority, decision.overrides) == ("P3", ("dev-cap",))
    assert policy.decide(facts(resource="arn:aws:s3:::finpay-uploads", priority="P1"), at).priority == "P1"


def test_the_ledger_teams_escalations_go_to_their_pagerduty_service_and_the_rest_everywhere(policy):
    at = datetime(2027, 1, 1, tzinfo=UTC)
    ledger = policy.decide(facts(resource="arn:aws:rds:us-east-1:482916305771:db:ledger-prod", owner="ledger-team"),
                           at)
    assert ledger.routing is not None and ledger.routing.sinks == ("pagerduty-ledger",)
    assert policy.decide(facts(resource="arn:aws:s3:::other", owner="data-team"), at).routing is None


def test_the_mutelist_example_mutes_as_prowler_would(mutelist):
    at = datetime(2027, 1, 1, tzinfo=UTC)
    archive = facts(check="s3_bucket_object_versioning", resource="arn:aws:s3:::finpay-growth-archive-001-003")
    assert mutelist.decide(archive, at).muted_by.rule.reason.startswith("Archives are write-once")
    assert mutelist.decide(facts(check="s3_bucket_object_versioning"), at).muted_by is None
    sandbox = {"environment": "sandbox"}
    assert mutelist.decide(facts(tags=sandbox), at).muted_by is not None
    assert mutelist.decide(facts(resource="arn:aws:s3:::finpay-sandbox-ledger", tags=sandbox), at).muted_by is None
    root = facts(check="iam_root_mfa_enabled", resource=f"arn:aws:iam::{ACCOUNT}:root", account="111122223333")
    assert mutelist.decide(root, at).muted_by is not None


def test_on_the_demo_scenario_the_example_pages_the_ledger_team_apart_and_mutes_the_website_bucket(tmp_path):
    files = build_scenario(seed=11, minutes=4).write_files(tmp_path)
    out = tmp_path / "escalations.ndjson"
    argv = ["replay", "--policy", str(example(tmp_path, "version: 1")), "--out", str(out)]
    for name, paths in files.items():
        argv += [f"--{name}", *map(str, paths)]
    assert main(argv) == 0
    events = [escalation_from_dict(orjson.loads(line)) for line in out.read_bytes().splitlines()]
    sinks = readme_sinks()
    paged = {event.resource: {sink.name for sink in sinks if skip_reason(sink, event) is None}
             for event in events if event.state == "escalated"}
    owners = {event.resource: event.asset.owner for event in events}
    assert {resource for resource, owner in owners.items() if owner == "ledger-team"} >= {
        "arn:aws:rds:us-east-1:482916305771:db:ledger-prod", "arn:aws:s3:::finpay-prod-statements"}
    assert {frozenset(names) for names in paged.values()} == {frozenset({"pagerduty-ledger"}),
                                                              frozenset({"pagerduty-secops"})}
    assert all(names == ({"pagerduty-ledger"} if owners[resource] == "ledger-team" else {"pagerduty-secops"})
                         for resource, names in paged.items())
    website = [event for event in events if event.resource == "arn:aws:s3:::finpay-www"]
    assert website and {event.state for event in website} == {"suppressed"}
