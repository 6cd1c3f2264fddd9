"""The ``hotpath`` command as a user meets it: one line per configuration error, never a secret echoed,
warnings for misspelt variables, ``--version`` and help for every option."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib

import pytest
from paths import ROOT

from stream.commands.main import build_parser
from stream.version import DISTRIBUTION, version

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
WEBHOOK_PASSWORD = "hunter2-webhook"
WEBHOOK_URL = f"https://soc:{WEBHOOK_PASSWORD}@hooks.example.com/x"


def hotpath(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m stream.commands.main ARGS`` with only the given HOTPATH_* variables set."""
    clean = {key: value for key, value in os.environ.items() if not key.upper().startswith("HOTPATH_")}
    return subprocess.run([sys.executable, "-m", "stream.commands.main", *args], capture_output=True, text=True,
                          env={**clean, **env}, cwd=ROOT, timeout=60)


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return result.stderr.strip().splitlines()


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("HOTPATH_SINKS", f'[{{"name": "soc", "kind": "webhook", "url": "{WEBHOOK_URL}"',
     "HOTPATH_SINKS: not valid JSON: Expecting ',' delimiter at line 1 column"),
    ("HOTPATH_SCORE", "{weight_internet: 30}", "HOTPATH_SCORE: not valid JSON: Expecting property name"),
    ("HOTPATH_SINKS", f'["{WEBHOOK_URL}"]',
     "HOTPATH_SINKS: 0: Input should be a valid dictionary or instance of SinkSettings"),
    ("HOTPATH_COMPRESSION", "brotli", "HOTPATH_COMPRESSION: Input should be 'none', 'gzip', 'snappy', 'lz4' or"),
])
def test_a_configuration_error_is_one_line_without_the_secret(variable, value, expected):
    result = hotpath("replay", **{variable: value})
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = stderr_lines(result)
    assert line.startswith(f"hotpath: configuration error: {expected}")
    assert WEBHOOK_PASSWORD not in result.stderr


def test_a_plain_value_is_echoed_masked():
    result = hotpath("replay", HOTPATH_WEB_PORT=WEBHOOK_URL)
    assert stderr_lines(result) == ["hotpath: configuration error: HOTPATH_WEB_PORT: Input should be a valid integer, "
                                    "unable to parse string as an integer (got 'https://soc:[masked]@hooks.example.com/x')"]


def test_more_in_sync_replicas_than_copies_is_refused_in_one_line():
    result = hotpath("replay", HOTPATH_REPLICATION_FACTOR="1", HOTPATH_MIN_INSYNC_REPLICAS="2")
    assert result.returncode == 2
    assert stderr_lines(result) == [
        "hotpath: configuration error: HOTPATH_MIN_INSYNC_REPLICAS (2) must not exceed HOTPATH_REPLICATION_FACTOR "
        "(1): no write with acks=all could succeed"]


def test_log_levels_are_accepted_in_any_case():
    result = hotpath("replay", HOTPATH_LOG_LEVEL="info")
    assert result.returncode == 0, result.stderr
    assert stderr_lines(result) == ["hotpath replay: 0 escalation events"]


def test_a_misspelt_variable_is_named_with_the_closest_setting_and_the_command_still_runs():
    result = hotpath("replay", HOTPATH_WINDOW_SIZE="600", HOTPATH_SCORE__P1_MAX="80",
                     HOTPATH_AWS_TAG_KEYS__OWNER="team", HOTPATH_KAFKA_PORT="9092")
    assert result.returncode == 0, result.stderr
    assert stderr_lines(result) == [
        "hotpath: warning: HOTPATH_SCORE__P1_MAX is not a hotpath setting and is ignored; "
        "did you mean HOTPATH_SCORE__P1_MIN?",
        "hotpath: warning: HOTPATH_WINDOW_SIZE is not a hotpath setting and is ignored; "
        "did you mean HOTPATH_WINDOW_SIZE_S?",
        "hotpath replay: 0 escalation events",
    ]


def test_the_secret_env_of_a_sink_is_not_taken_for_a_misspelt_setting():
    sinks = '[{"name": "soc", "kind": "webhook", "url": "https://hooks.example.com/x", "secret_env": "HOTPATH_SOC_KEY"}]'
    result = hotpath("replay", HOTPATH_SINKS=sinks, HOTPATH_SOC_KEY="s3cret")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr


def test_version_comes_from_the_distribution_or_the_checkout():
    result = hotpath("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"hotpath {PYPROJECT['version']}"
    assert version() == PYPROJECT["version"]


def test_the_distribution_name_is_not_the_unrelated_pypi_project():
    assert PYPROJECT["name"] == DISTRIBUTION != "hotpath"
    assert PYPROJECT["scripts"]["hotpath"] == "stream.commands.main:main"


def test_help_describes_the_product_and_every_option_of_every_command():
    parser = build_parser()
    assert parser.description.startswith("hotpath escalates the cloud misconfigurations")
    undocumented = [f"{command} {' '.join(action.option_strings) or action.dest}"
                    for command, sub in _all_parsers(parser)
                    for action in sub._actions
                    if not action.help and not isinstance(action, argparse._SubParsersAction)]
    assert undocumented == []


def _all_parsers(parser: argparse.ArgumentParser, name: str = "hotpath"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for word, sub in action.choices.items():
                yield from _all_parsers(sub, f"{name} {word}")
