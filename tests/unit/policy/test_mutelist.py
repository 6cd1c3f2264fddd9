"""A Prowler mutelist mutes in hotpath exactly what it mutes in Prowler.

The examples are Prowler's published ones (docs/tutorials/mutelist.md), in their structure, with the
findings each comment of the documentation promises to mute or to leave alone.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from stream.policy.document import PolicyFileError, read_policy_file
from stream.policy.mutelist import Mutelist, MutelistDocument

# Prowler's documented example, as published: YAML keeps only the last of keys given twice, so most of
# its "*" entries are lost (Prowler reads it with yaml.safe_load too); each is tested on its own below.
DOCS_EXAMPLE = """\
### Account, Check and/or Region can be * to apply for all the cases.
### Resources and tags are lists that can have either Regex or Keywords.
### Tags is an optional list that matches on tuples of 'key=value' and are "ANDed" together.
### Use an alternation Regex to match one of multiple tags with "ORed" logic.
### For each check you can except Accounts, Regions, Resources and/or Tags.
###########################  MUTELIST EXAMPLE  ###########################
Mutelist:
  Accounts:
    "123456789012":
      Checks:
        "iam_user_hardware_mfa_enabled":
          Regions:
            - "us-east-1"
          Resources:
            - "user-1"           # Will mute user-1 in check iam_user_hardware_mfa_enabled
            - "user-2"           # Will mute user-2 in check iam_user_hardware_mfa_enabled
        "ec2_*":
          Regions:
            - "*"
          Resources:
            - "*"                 # Will mute every EC2 check in every account and region
        "*":
          Regions:
            - "*"
          Resources:
            - "test"
          Tags:
            - "test=test"         # Will mute every resource containing the string "test" and the tags 'test=test' and
            - "project=test|project=stage" # either of ('project=test' OR project=stage) in account 123456789012
        "*":
            Regions:
              - "*"
            Resources:
              - "test"
            Tags:
              - "test=test"
              - "project=test"    # This will mute every resource containing the string "test" and BOTH tags
        "*":
            Regions:
              - "*"
            Resources:
              - "test"
            Tags:                 # This will mute every resource containing the string "test" and the ones that
              - "test=test|project=(test|dev)"
        "*":
            Regions:
              - "*"
            Resources:
              - "test"
            Tags:
              - "test=test"       # This will mute every resource containing the string "test" and the tags
              - "project=test|project=stage"

    "*":
      Checks:
        "s3_bucket_object_versioning":
          Regions:
            - "eu-west-1"
            - "us-east-1"
          Resources:
            - "ci-logs"           # Will mute bucket "ci-logs" AND ALSO bucket "ci-logs-replica"
            - "logs"              # Will mute EVERY BUCKET containing the string "logs"
            - ".+-logs"           # Will mute all buckets containing the terms ci-logs, qa-logs, etc.
        "ecs_task_definitions_no_environment_secrets":
          Regions:
            - "*"
          Resources:
            - "*"
          Exceptions:
            Accounts:
              - "0123456789012"
            Regions:
              - "eu-west-1"
              - "eu-south-2"        # Will mute every resource in check ecs_task_definitions_no_environment_secrets
        "*":
          Regions:
            - "*"
          Resources:
            - "*"
          Tags:
            - "environment=dev"    # Will mute every resource containing the tag 'environment=dev'

    "123456789012":
      Checks:
        "*":
          Regions:
            - "*"
          Resources:
            - "*"
          Exceptions:
            Resources:
              - "test"
            Tags:
              - "environment=prod"   # Will mute every resource except in account 123456789012 except the ones

    "*":
      Checks:
        "ec2_*":
          Regions:
            - "*"
          Resources:
            - "test-resource" # Will mute the resource "test-resource" in all accounts and regions
"""


def mutelist(text: str) -> Mutelist:
    return Mutelist(MutelistDocument.model_validate(yaml.safe_load(text)))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def documented_entry(key_line: int) -> Mutelist:
    """The example's entry whose check key is on that line, alone under its account: as Prowler reads it
    when it is the only entry so keyed (entries lost to a repeated key are tested this way)."""
    lines = DOCS_EXAMPLE.splitlines()
    depth = _indent(lines[key_line - 1])
    end = next((number for number in range(key_line, len(lines))
                if lines[number].strip() and _indent(lines[number]) <= depth), len(lines))
    account = next(line for line in reversed(lines[:key_line]) if line.strip() and _indent(line) == 4)
    return mutelist("\n".join(["Mutelist:", "  Accounts:", account, "      Checks:", *lines[key_line - 1:end]]))


def muted(rules: Mutelist, check: str, resource: str, *, account: str = "123456789012", region: str = "us-east-1",
          tags: dict[str, str] | None = None) -> bool:
    return rules.muting_entry(account, check, region, resource, tags or {}) is not None


def test_the_published_example_keeps_only_the_last_of_each_repeated_key_as_prowler_does(tmp_path: Path) -> None:
    path = tmp_path / "mutelist.yaml"
    path.write_text(DOCS_EXAMPLE)
    policy_file = read_policy_file(path)
    assert [(w.line, w.message) for w in policy_file.warnings] == [
        (30, "key '*' is given again (first on line 22); only this last one is read"),
        (38, "key '*' is given again (first on line 22); only this last one is read"),
        (45, "key '*' is given again (first on line 22); only this last one is read"),
        (83, "key '123456789012' is given again (first on line 9); only this last one is read"),
        (96, "key '*' is given again (first on line 54); only this last one is read"),
    ]
    rules = Mutelist(policy_file.document)
    # What survives: account 123456789012 mutes everything but "test" resources tagged environment=prod ...
    assert rules.muting_entry("123456789012", "iam_root_mfa_enabled", "eu-west-1", "root", {}) \
        == "Accounts['123456789012'].Checks['*']"
    assert not muted(rules, "iam_root_mfa_enabled", "test-db", tags={"environment": "prod"})
    # ... and every account mutes the EC2 checks on "test-resource"; the lost entries mute nothing.
    assert rules.muting_entry("999999999999", "ec2_instance_public_ip", "eu-west-1", "test-resource", {}) \
        == "Accounts['*'].Checks['ec2_*']"
    assert not muted(rules, "s3_bucket_object_versioning", "ci-logs", account="999999999999")
    assert not muted(rules, "ec2_instance_public_ip", "i-0abc", account="999999999999")


def test_resources_are_searched_in_one_account_and_listed_regions() -> None:
    rules = documented_entry(11)
    assert muted(rules, "iam_user_hardware_mfa_enabled", "user-1")
    assert muted(rules, "iam_user_hardware_mfa_enabled", "user-2")
    assert muted(rules, "iam_user_hardware_mfa_enabled", "arn:aws:iam::123456789012:user/user-10")  # searched
    assert not muted(rules, "iam_user_hardware_mfa_enabled", "user-3")
    assert not muted(rules, "iam_user_hardware_mfa_enabled", "user-1", region="eu-west-1")
    assert not muted(rules, "iam_user_hardware_mfa_enabled", "user-1", account="210987654321")
    assert not muted(rules, "iam_user_mfa_enabled_console_access", "user-1")


def test_a_service_wildcard_mutes_every_check_of_the_service_in_every_region() -> None:
    rules = documented_entry(17)
    assert muted(rules, "ec2_instance_public_ip", "i-0abc", region="ap-south-1")
    assert muted(rules, "ec2_securitygroup_allow_ingress_from_internet_to_all_ports", "sg-1")
    assert not muted(rules, "s3_bucket_public_access", "bucket")
    assert muted(rules, "ec2_instance_public_ip", "i-0abc", region=None)  # no region is "", which "*" matches


def test_tags_listed_apart_must_all_be_present_and_an_alternation_is_either() -> None:
    rules = documented_entry(22)
    assert muted(rules, "s3_bucket_public_access", "my-test-bucket", tags={"test": "test", "project": "stage"})
    assert muted(rules, "rds_instance_no_public_access", "test-db", tags={"project": "test", "test": "test"})
    assert not muted(rules, "s3_bucket_public_access", "my-test-bucket", tags={"test": "test"})
    assert not muted(rules, "s3_bucket_public_access", "my-test-bucket", tags={"project": "stage"})
    assert not muted(rules, "s3_bucket_public_access", "my-test-bucket", tags={"test": "test", "project": "prod"})
    assert not muted(rules, "s3_bucket_public_access", "prod-bucket", tags={"test": "test", "project": "stage"})


def test_tags_listed_apart_are_all_needed() -> None:
    rules = documented_entry(30)
    assert muted(rules, "s3_bucket_public_access", "test", tags={"test": "test", "project": "test"})
    assert not muted(rules, "s3_bucket_public_access", "test", tags={"test": "test", "project": "stage"})


def test_a_group_in_a_tag_alternation_mutes_any_of_its_values() -> None:
    rules = documented_entry(38)
    assert muted(rules, "s3_bucket_public_access", "test", tags={"project": "dev"})
    assert muted(rules, "s3_bucket_public_access", "test", tags={"owner": "x", "test": "test"})
    assert not muted(rules, "s3_bucket_public_access", "test", tags={"project": "prod"})
    assert not muted(rules, "s3_bucket_public_access", "test")


def test_resource_regular_expressions_and_keywords_mute_every_resource_containing_them() -> None:
    rules = documented_entry(56)
    for bucket in ("ci-logs", "ci-logs-replica", "qa-logs", "weblogs"):
        assert muted(rules, "s3_bucket_object_versioning", bucket, account="555555555555", region="eu-west-1")
    assert not muted(rules, "s3_bucket_object_versioning", "ci-logs", region="ap-south-1")
    assert not muted(rules, "s3_bucket_object_versioning", "website", region="eu-west-1")


def test_exceptions_spare_only_what_matches_every_field_they_list() -> None:
    rules = documented_entry(64)
    check = "ecs_task_definitions_no_environment_secrets"
    assert not muted(rules, check, "task:1", account="0123456789012", region="eu-west-1")
    assert not muted(rules, check, "task:1", account="0123456789012", region="eu-south-2")
    assert muted(rules, check, "task:1", account="0123456789012", region="us-east-1")
    assert muted(rules, check, "task:1", account="111122223333", region="eu-west-1")


def test_tags_alone_mute_every_check_in_every_account() -> None:
    rules = documented_entry(75)
    assert muted(rules, "rds_instance_backup_enabled", "db-1", account="999", tags={"team": "a", "environment": "dev"})
    assert not muted(rules, "rds_instance_backup_enabled", "db-1", tags={"environment": "prod"})
    assert not muted(rules, "rds_instance_backup_enabled", "db-1")


def test_an_exception_on_resource_and_tag_needs_both() -> None:
    rules = documented_entry(85)
    assert not muted(rules, "rds_instance_backup_enabled", "test-db", tags={"environment": "prod"})
    assert muted(rules, "rds_instance_backup_enabled", "test-db", tags={"environment": "dev"})
    assert muted(rules, "rds_instance_backup_enabled", "prod-db", tags={"environment": "prod"})


def test_check_names_from_every_scanner_and_prowlers_lambda_rename() -> None:
    rules = mutelist("""
Mutelist:
  Accounts:
    "*":
      Checks:
        "EC2.8": {Regions: ["*"], Resources: ["*"]}
        "lambda_function_url_public": {Regions: ["*"], Resources: ["*"]}
        "s3-bucket-public-read-prohibited": {Regions: ["*"], Resources: ["*"]}
""")
    assert muted(rules, "EC2.8", "i-0abc")
    assert muted(rules, "awslambda_function_url_public", "fn")
    assert muted(rules, "s3-bucket-public-read-prohibited", "bucket")
    assert muted(rules, "EC2.81", "i-0abc")  # searched, as Prowler searches: anchor it ("^EC2.8$") to mean one
    assert not muted(rules, "EC2.9", "i-0abc")
    assert not muted(rules, "S3.8", "bucket")


def test_account_keys_are_compared_as_text_and_every_matching_key_is_tried() -> None:
    rules = mutelist("""
Mutelist:
  Accounts:
    "1234.*":
      Checks:
        "*": {Regions: ["*"], Resources: ["*"]}
    "123456789012":
      Checks:
        "iam_*": {Regions: ["*"], Resources: ["*"]}
    "*":
      Checks:
        "s3_*": {Regions: ["*"], Resources: ["*"]}
""")
    assert not muted(rules, "ec2_instance_public_ip", "i-0abc")
    assert muted(rules, "iam_root_mfa_enabled", "root")
    assert muted(rules, "s3_bucket_public_access", "bucket")


def test_an_excepted_entry_stops_later_entries_of_its_account_but_not_other_accounts() -> None:
    rules = mutelist("""
Mutelist:
  Accounts:
    "123456789012":
      Checks:
        "s3_*":
          Regions: ["*"]
          Resources: ["*"]
          Exceptions: {Resources: ["critical"]}
        "s3_bucket_public_access": {Regions: ["*"], Resources: ["*"]}
    "*":
      Checks:
        "*": {Regions: ["*"], Resources: ["critical-archive"]}
""")
    assert not muted(rules, "s3_bucket_public_access", "critical-data")
    assert rules.muting_entry("123456789012", "s3_bucket_public_access", "us-east-1", "critical-archive", {}) \
        == "Accounts['*'].Checks['*']"
    assert rules.muting_entry("123456789012", "s3_bucket_public_access", "us-east-1", "public-site", {}) \
        == "Accounts['123456789012'].Checks['s3_*']"


@pytest.mark.parametrize(("pattern", "reason"), [
    ("(a)\\\\1", "invalid escape sequence"),
    ("(?=admin)", "invalid perl operator"),
    ("[unclosed", "missing ]"),
])
def test_a_pattern_that_cannot_run_in_linear_time_is_refused_with_its_line(tmp_path: Path, pattern: str,
                                                                          reason: str) -> None:
    path = tmp_path / "mutelist.yaml"
    path.write_text(f'Mutelist:\n  Accounts:\n    "*":\n      Checks:\n        "*":\n          Regions: ["*"]\n'
                    f'          Resources:\n            - "{pattern}"\n')
    with pytest.raises(PolicyFileError) as raised:
        read_policy_file(path)
    [problem] = raised.value.problems
    assert problem.line == 8
    assert problem.message.startswith("Mutelist.Accounts.*.Checks.*.Resources.0: not a regular expression RE2 accepts")
    assert reason in problem.message


def test_a_crafted_resource_id_costs_what_a_plain_one_of_its_length_costs() -> None:
    # "(a+)+$" takes exponential time in a backtracking engine on "aaaa...!"; RE2's time is linear.
    rules = mutelist('Mutelist:\n  Accounts:\n    "*":\n      Checks:\n        "*":\n'
                     '          Regions: ["*"]\n          Resources: ["(a+)+$", "(x|x)*y"]\n')
    crafted, plain = "a" * 5000 + "!", "b" * 5001

    def cost(resource: str) -> float:
        start = time.perf_counter()
        for _ in range(50):
            assert not muted(rules, "ec2_instance_public_ip", resource)
        return time.perf_counter() - start

    cost(plain)
    assert cost(crafted) < 20 * cost(plain)
