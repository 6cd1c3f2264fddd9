"""``hotpath policy check`` as an operator meets it: ``FILE:LINE: message``, one line per problem, exit 1;
a one-line summary and exit 0 for a good file; and the published JSON Schema is the model's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from paths import SCHEMAS

from stream.commands.main import main
from stream.commands.policy import policy_schema_text


def check(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, list[str]]:
    code = main(["policy", "check", *map(str, paths)])
    return code, capsys.readouterr().out.splitlines()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_error_is_one_line_with_its_line_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "policy.yaml", """\
version: 1
mute:
  - id: legacy
    owner: team-web
    match:
      resources: ["s3://www-(?=x)"]
overrides:
  - match: {environments: [dev]}
    priority_cap: P9
routes:
  - to: [soc]
    sinks: [soc]
""")
    code, lines = check(capsys, path)
    assert code == 1
    assert lines == [
        f"{path}:3: mute.0.reason: Field required",
        f"{path}:6: mute.0.match.resources.0: not a regular expression RE2 accepts (invalid perl operator: (?=)",
        f"{path}:9: overrides.0.priority_cap: Input should be 'P1', 'P2', 'P3', 'P4' or 'P5'",
        f"{path}:12: routes.0.sinks: Extra inputs are not permitted",
    ]


def test_a_good_file_gets_a_one_line_summary_and_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = write(tmp_path, "policy.yaml", "version: 1\noverrides:\n  - match: {environments: [dev]}\n"
                                           "    priority_cap: P3\n")
    mutelist = write(tmp_path, "mutelist.yaml", 'Mutelist:\n  Accounts:\n    "*":\n      Checks:\n'
                                                '        "ec2_*": {Regions: ["*"], Resources: ["*"]}\n')
    code, lines = check(capsys, policy, mutelist)
    assert code == 0
    assert len(lines) == 2
    assert lines[0].startswith(f"{policy}: ok: hotpath policy version 1, 0 mute rules, 1 override, 0 routes (sha256 ")
    assert lines[1].startswith(f"{mutelist}: ok: Prowler mutelist, 1 account, 1 entry (sha256 ")


def test_one_bad_file_among_good_ones_fails_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.yaml", "version: 1\n")
    code, lines = check(capsys, good, tmp_path / "missing.yaml")
    assert code == 1
    assert lines[1] == f"{tmp_path / 'missing.yaml'}: cannot read the file: No such file or directory"


@pytest.mark.parametrize(("text", "expected"), [
    ("version: 1\nmute: [\n", "3: not valid YAML: expected the node content, but found '<stream end>'"),
    ("version: 1\nmute:\n - id: a\n  owner: b\n",
     "4: not valid YAML: expected <block end>, but found '<block mapping start>'"),
    ("rules:\n  - mute\n",
     "1: neither a Prowler mutelist (top-level `Mutelist`) nor a hotpath policy (top-level `version`)"),
    ("version: 1\nroutes:\n  - &soc {to: [soc]}\n  - *soc\n",
     "4: YAML anchors and aliases are not supported in policy files; write the values out"),
    ('Mutelist:\n  Accounts:\n    123456789012:\n      Checks: {}\n',
     "3: Mutelist.Accounts.123456789012: Input should be a valid string"),
    ("version: 1\nmute:\n  - id: a\n    owner: b\n    reason: c\n    expires: 2027-02-30\n    match: {}\n",
     "6: mute.0.expires: Input should be a valid date or datetime, day value is outside expected range"),
])
def test_unreadable_files_name_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                        expected: str) -> None:
    path = write(tmp_path, "policy.yaml", text)
    code, lines = check(capsys, path)
    assert (code, lines) == (1, [f"{path}:{expected}"])


def test_a_file_too_large_is_refused_unread(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "policy.yaml", "version: 1\n" + "# padding\n" * 120_000)
    assert check(capsys, path) == (1, [f"{path}: larger than 1048576 bytes"])


def test_a_file_nested_too_deeply_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "policy.yaml", "version: 1\nmute:\n  - " + "[" * 200_000 + "]" * 200_000)
    assert check(capsys, path) == (1, [f"{path}:3: nested deeper than 32 levels"])


def test_warnings_do_not_fail_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "policy.yaml", """\
version: 1
mute:
  - id: old-exception
    owner: team-web
    reason: migrated last year
    expires: 2020-06-30
    match: {checks: [".*"]}
routes:
  - to: [soc]
    to: [pagerduty]
""")
    code, lines = check(capsys, path)
    assert code == 0
    assert lines[:2] == [
        f"{path}:6: warning: mute rule 'old-exception' expired on 2020-06-30: it mutes nothing",
        f"{path}:10: warning: key 'to' is given again (first on line 9); only this last one is read",
    ]
    assert lines[2].startswith(f"{path}: ok: ")


def test_a_secret_pasted_into_a_file_is_not_echoed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "policy.yaml", "version: 1\nroutes:\n  - to: [pagerduty]\n"
                                         "    routing_key=R0UT1NGKEY0123456789abcdef: x\n")
    code, lines = check(capsys, path)
    assert code == 1
    assert len(lines) == 1 and "R0UT1NGKEY" not in lines[0] and "[masked]" in lines[0]


def test_the_published_schema_is_the_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == policy_schema_text()
    assert (SCHEMAS / "policy.schema.json").read_text() == printed, \
        "regenerate with: hotpath policy schema > topics/schemas/policy.schema.json"


def test_the_schema_accepts_the_files_the_check_accepts() -> None:
    validator = Draft202012Validator(json.loads(policy_schema_text()))
    good = {"version": 1, "mute": [{"id": "a", "owner": "b", "reason": "c", "expires": "2027-01-31",
                                    "match": {"checks": ["ec2_.*"]}}],
            "routes": [{"to": ["soc"], "priorities": ["P1"]}]}
    assert list(validator.iter_errors(good)) == []
    assert list(validator.iter_errors({"version": 1, "mute": [{"id": "a"}]}))
