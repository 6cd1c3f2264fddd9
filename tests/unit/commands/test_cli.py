"""The ``hotpath`` command as a user meets it: one line per configuration error, never a secret echoed,
warnings for misspelt variables, ``--version`` and help for every option."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions

import pytest
from paths import ROOT

from stream.commands.main import EXTRA_OF_MODULE, build_parser
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
    sinks = ('[{"name": "soc", "kind": "webhook", "url": "https://hooks.example.com/x", '
             '"secret_env": "HOTPATH_SOC_KEY"}]')
    result = hotpath("replay", HOTPATH_SINKS=sinks, HOTPATH_SOC_KEY="s3cret")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr


def test_version_comes_from_the_distribution_or_the_checkout():
    result = hotpath("--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"hotpath {PYPROJECT['version']} (OTLP decoder: ")
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


# --- extras: the install carries what the worker runs ------------------------------------------------

# Runs ``hotpath ARGS`` in an interpreter where the named top-level modules cannot be imported, as when
# the extra that installs them was left out.
WITHOUT_MODULES = """
import sys
from importlib.abc import MetaPathFinder

blocked = set(sys.argv[1].split(","))


class NotInstalled(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
from stream.commands.main import main

sys.exit(main(sys.argv[2:]))
"""
DEMO_MODULES = ("opentelemetry",)
AWS_MODULES = ("boto3", "botocore", "aws_msk_iam_sasl_signer")


def hotpath_without(modules: tuple[str, ...], *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if not key.upper().startswith("HOTPATH_")}
    return subprocess.run([sys.executable, "-c", WITHOUT_MODULES, ",".join(modules), *args], capture_output=True,
                          text=True, env={**clean, **env}, cwd=ROOT, timeout=60)


def test_every_command_shows_its_help_without_the_extras():
    for words in ([], ["demo"], ["aws", "pull-findings"], ["aws", "sync-assets"], ["topics", "apply"], ["worker"]):
        result = hotpath_without(DEMO_MODULES + AWS_MODULES, *words, "--help")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: hotpath")


@pytest.mark.parametrize(("modules", "args", "line"), [
    (DEMO_MODULES, ["demo", "--play-seconds", "0"],
     "hotpath demo needs the demo extra (opentelemetry is not installed): pip install 'hotpath-stream[demo]'"),
    (AWS_MODULES, ["aws", "pull-findings", "--once", "--regions", "eu-west-1"],
     "hotpath aws pull-findings needs the aws extra (boto3 is not installed): pip install 'hotpath-stream[aws]'"),
    (AWS_MODULES, ["aws", "sync-assets", "--regions", "eu-west-1"],
     "hotpath aws sync-assets needs the aws extra (boto3 is not installed): pip install 'hotpath-stream[aws]'"),
])
def test_a_command_without_its_extra_says_which_to_install_before_doing_anything(modules, args, line):
    # No broker answers at this address: a command that got past its imports would say so instead.
    result = hotpath_without(modules, *args, HOTPATH_BOOTSTRAP_SERVERS="127.0.0.1:9")
    assert (result.returncode, result.stdout, stderr_lines(result)) == (2, "", [line])


@pytest.mark.parametrize("command", ["worker", "deliver"])
def test_a_service_on_msk_iam_without_the_aws_extra_says_which_to_install(command):
    result = hotpath_without(AWS_MODULES, command, HOTPATH_BOOTSTRAP_SERVERS="127.0.0.1:9",
                             HOTPATH_SECURITY_PROTOCOL="SASL_SSL", HOTPATH_SASL_MECHANISM="OAUTHBEARER",
                             HOTPATH_SASL_OAUTH_PROVIDER="msk_iam", HOTPATH_SASL_OAUTH_AWS_REGION="eu-west-1")
    assert result.returncode == 2
    # deliver logs first that no sink is configured; the cause is the last line, and the only one that is not JSON
    assert [line for line in stderr_lines(result) if not line.startswith("{")] == [
        f"hotpath {command} needs the aws extra (botocore is not installed): pip install 'hotpath-stream[aws]'"]


def test_a_missing_module_no_extra_installs_is_not_passed_off_as_one():
    result = hotpath_without(("faust",), "worker", HOTPATH_BOOTSTRAP_SERVERS="127.0.0.1:9")
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'faust'" in result.stderr
    assert "extra" not in result.stderr


def test_each_extra_package_is_recognised_when_missing():
    """Every package an extra lists installs a module the command line maps to that extra."""
    extras_of_distribution: dict[str, set[str]] = {}
    for module, distributions in packages_distributions().items():
        if module in EXTRA_OF_MODULE:
            for distribution in distributions:
                extras_of_distribution.setdefault(distribution.lower(), set()).add(EXTRA_OF_MODULE[module])
    for extra in ("demo", "aws"):
        for requirement in PYPROJECT["optional-dependencies"][extra]:
            name = re.match(r"[A-Za-z0-9._-]+", requirement).group().lower()
            assert extras_of_distribution.get(name) == {extra}, name


def test_the_worker_deliver_and_the_pipeline_import_neither_the_opentelemetry_sdk_nor_boto3():
    probe = """
import importlib, pkgutil, sys
import stream
for module in pkgutil.walk_packages(stream.__path__, "stream."):
    if not module.name.startswith(("stream.demo.", "stream.sources.aws.")):
        importlib.import_module(module.name)
from stream.commands.main import build_parser
build_parser()
print(" ".join(sorted({name.partition(".")[0] for name in sys.modules})))
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert "stream" in loaded
    assert not loaded & {"opentelemetry", "boto3", "botocore", "aws_msk_iam_sasl_signer"}
