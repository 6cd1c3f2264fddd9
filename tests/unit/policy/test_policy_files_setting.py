"""HOTPATH_POLICY_FILES: the files the worker judges by, and a bad one stopping start-up with one line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from environment import settings_read_from

from stream.policy.check import policy_or_config_error
from stream.policy.document import load_policy
from stream.settings import ConfigError

MUTELIST = 'Mutelist:\n  Accounts:\n    "*":\n      Checks:\n        "s3_*":\n          Regions: ["*"]\n' \
           '          Resources: ["*"]\n'
POLICY = "version: 1\noverrides:\n  - match: {environments: [dev]}\n    priority_cap: P3\n"


@pytest.mark.parametrize("value", ["a.yaml,b.yaml", " a.yaml , b.yaml ", '["a.yaml", "b.yaml"]'])
def test_the_setting_takes_a_comma_separated_or_json_list(value, monkeypatch) -> None:
    settings = settings_read_from({"HOTPATH_POLICY_FILES": value}, monkeypatch)
    assert settings.policy_files == [Path("a.yaml"), Path("b.yaml")]


def test_a_broken_json_list_is_a_configuration_error(monkeypatch) -> None:
    with pytest.raises(ConfigError, match="HOTPATH_POLICY_FILES: .*not a JSON list of paths"):
        settings_read_from({"HOTPATH_POLICY_FILES": '["a.yaml"'}, monkeypatch)


def test_both_kinds_of_file_load_into_one_policy_in_order(tmp_path) -> None:
    (tmp_path / "mutelist.yaml").write_text(MUTELIST)
    (tmp_path / "policy.yaml").write_text(POLICY)
    paths = [tmp_path / "mutelist.yaml", tmp_path / "policy.yaml"]
    policy = policy_or_config_error(paths)
    assert policy is not None and policy.digest == load_policy(paths).digest
    assert [source.kind for source in policy.sources] == ["prowler-mutelist", "hotpath"]
    assert policy_or_config_error([]) is None


def test_every_problem_of_every_bad_file_is_one_line_and_masked(tmp_path) -> None:
    (tmp_path / "good.yaml").write_text(POLICY)
    (tmp_path / "bad.yaml").write_text("version: 2\n")
    (tmp_path / "worse.yaml").write_text("version: 1\nmute:\n  - id: x\n    owner: 4111111111111111\n")
    with pytest.raises(ConfigError) as raised:
        policy_or_config_error([tmp_path / "good.yaml", tmp_path / "bad.yaml", tmp_path / "worse.yaml",
                                tmp_path / "missing.yaml"])
    lines = str(raised.value).splitlines()
    files = [line.split(":")[0] for line in lines]
    assert list(dict.fromkeys(files)) == [str(tmp_path / name) for name in ("bad.yaml", "worse.yaml", "missing.yaml")]
    assert files.count(str(tmp_path / "worse.yaml")) > 1  # every problem of a file, not the first alone
    assert "4111111111111111" not in str(raised.value)


def test_the_worker_stops_before_kafka_on_a_bad_policy_file(tmp_path, monkeypatch) -> None:
    from stream.worker.app import create_app

    (tmp_path / "bad.yaml").write_text("neither: one\n")
    settings = settings_read_from({"HOTPATH_POLICY_FILES": str(tmp_path / "bad.yaml"),
                                   "HOTPATH_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, monkeypatch)
    with pytest.raises(ConfigError, match="bad.yaml:1: neither a Prowler mutelist"):
        create_app(settings)
