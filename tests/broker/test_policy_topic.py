"""The policy on hotpath.policy: `hotpath policy publish` on the live broker, its audit record, and the
worker's policy feed reading each complete version (and skipping one that is not valid)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import orjson
from policy_events import CARD, EXPORTS_MUTED, IAM_MUTELIST, NOTHING_MUTED, policy_file
from waiting import run_loop_until
from workers import run_hotpath

from stream.kafka.clients import producer
from stream.kafka.wholetopic import read_to_end
from stream.metrics import Metrics
from stream.policy.document import load_policy
from stream.policy.published import PublishedFile
from stream.policy.rules import FindingFacts
from stream.worker.policyfeed import PolicyFeed

EXPORTS = FindingFacts(check="s3_bucket_public_access", resource="arn:aws:s3:::payments-exports", severity="high",
                       priority="P1")
ROLE = FindingFacts(check="iam_role_admin", resource="arn:aws:iam::123456789012:role/ops", severity="high",
                    priority="P2")
NOW = datetime(2026, 12, 4, tzinfo=UTC)


def policy_records(settings) -> dict[str, dict | None]:
    """The latest record of each file on hotpath.policy (None: removed)."""
    return {key.decode(): (orjson.loads(value) if value is not None else None)
            for _, _, _, key, value in read_to_end(settings, [settings.topic_policy])}


def audit_trail(settings) -> list[dict]:
    """Every record on hotpath.audit (publish returns once the broker has its record)."""
    return [orjson.loads(value) for _, _, _, _, value in read_to_end(settings, [settings.topic_audit])]


def test_publish_makes_the_files_the_policy_and_records_who_and_what_changed(hotpath_settings, tmp_path):
    settings = hotpath_settings
    first = [policy_file(tmp_path, "payments.yaml", EXPORTS_MUTED), policy_file(tmp_path, "iam.yaml", IAM_MUTELIST)]
    v1 = load_policy(first).digest

    code, lines = run_hotpath(["policy", "publish", *map(str, first), "--by", "alice"], settings, tmp_path)

    assert code == 0, lines
    assert lines[-1] == f"published policy version {v1[:12]} (payments.yaml, iam.yaml) by alice"
    records = policy_records(settings)
    assert {name: (record["version"], record["sources"], record["published_by"], record["text"])
            for name, record in records.items()} == {
        "payments.yaml": (v1, ["payments.yaml", "iam.yaml"], "alice", EXPORTS_MUTED),
        "iam.yaml": (v1, ["payments.yaml", "iam.yaml"], "alice", IAM_MUTELIST)}

    # The second version lifts the mute, carries a card number in a comment, and drops the mutelist.
    (tmp_path / "next").mkdir()
    second = [policy_file(tmp_path / "next", "payments.yaml", f"{NOTHING_MUTED}# paid with {CARD}\n")]
    v2 = load_policy(second).digest
    code, lines = run_hotpath(["policy", "publish", str(second[0]), "--by", "bob"], settings, tmp_path)
    assert code == 0, lines

    records = policy_records(settings)
    assert records["iam.yaml"] is None  # removed: the new version does not have it
    assert (records["payments.yaml"]["version"], records["payments.yaml"]["sources"]) == (v2, ["payments.yaml"])
    published, replaced = audit_trail(settings)
    assert (published["kind"], published["by"], published["policy_version"], published["previous_version"]) == (
        "policy_published", "alice", v1, None)
    assert published["sources"] == ["payments.yaml", "iam.yaml"]
    assert (replaced["by"], replaced["policy_version"], replaced["previous_version"]) == ("bob", v2, v1)
    assert "-  - id: exports-accepted\n" in replaced["diff"] and "--- a/iam.yaml\n+++ /dev/null\n" in replaced["diff"]
    assert CARD not in replaced["diff"]

    # The same version again changes nothing, and records nothing.
    code, lines = run_hotpath(["policy", "publish", str(second[0])], settings, tmp_path)
    assert (code, lines[-1]) == (0, f"policy version {v2[:12]} is already the published one: nothing to do")
    assert len(audit_trail(settings)) == 2


def test_a_file_that_is_not_valid_is_not_published(hotpath_settings, tmp_path):
    bad = policy_file(tmp_path, "payments.yaml", "version: 1\nmute:\n  - id: no-owner\n    match: {}\n")

    code, lines = run_hotpath(["policy", "publish", str(bad)], hotpath_settings, tmp_path)

    assert code == 1
    assert lines and all(line.startswith(f"{bad}:") for line in lines), lines
    assert policy_records(hotpath_settings) == {}
    assert audit_trail(hotpath_settings) == []


def test_the_feed_hands_on_each_complete_version_and_skips_one_that_is_not_valid(hotpath_settings, tmp_path, caplog):
    settings = hotpath_settings
    # Written on Windows: the version is the digest of these very bytes, so the text must travel unchanged.
    first = [policy_file(tmp_path, "payments.yaml", EXPORTS_MUTED.replace("\n", "\r\n")),
             policy_file(tmp_path, "iam.yaml", IAM_MUTELIST)]
    assert run_hotpath(["policy", "publish", *map(str, first)], settings, tmp_path)[0] == 0
    feed = PolicyFeed(settings, Metrics().feed_records)
    loop = asyncio.new_event_loop()
    feed.start(loop)
    try:
        run_loop_until(loop, lambda: feed.caught_up.is_set() and feed.pending is not None, "the first version")
        policy = feed.take()
        assert policy.digest == load_policy(first).digest  # the version replay --policy names for the same files
        assert policy.decide(EXPORTS, NOW).muted_by.rule.id == "exports-accepted"
        assert policy.decide(EXPORTS, NOW).muted_by.source == "hotpath.policy"
        assert policy.decide(ROLE, NOW).muted_by is not None
        assert feed.take() is None

        # A version whose file does not validate: logged with the file and line, the version in force stays.
        broken = PublishedFile(text="version: 1\nmute:\n  - id: no-owner\n    match: {}\n", version="c" * 64,
                               sources=["payments.yaml"], published_by="mallory", published_at="2026-12-04T00:00:00Z")
        client = producer(settings)
        client.produce(settings.topic_policy, key=b"payments.yaml", value=orjson.dumps(broken.model_dump()))
        assert client.flush(30) == 0
        with caplog.at_level(logging.ERROR, logger="hotpath.policy"):
            run_loop_until(loop, lambda: feed.refused == "c" * 64, "the broken version is refused")
        assert feed.take() is None and feed.version == policy.digest
        assert "payments.yaml:3: mute.0.owner: Field required" in caplog.text

        (tmp_path / "next").mkdir()
        lifted = [policy_file(tmp_path / "next", "payments.yaml", NOTHING_MUTED)]
        assert run_hotpath(["policy", "publish", str(lifted[0])], settings, tmp_path)[0] == 0
        run_loop_until(loop, lambda: feed.pending is not None, "the second version")
        policy = feed.take()
        assert policy.digest == load_policy(lifted).digest
        assert policy.decide(EXPORTS, NOW).muted_by is None and policy.decide(ROLE, NOW).muted_by is None
    finally:
        feed.stop()
        loop.close()
