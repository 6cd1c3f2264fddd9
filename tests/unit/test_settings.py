"""A bad HOTPATH_* value stops everything with one line naming the variable; both Kafka clients share the
connection settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from faust import SASLCredentials, SSLCredentials

from stream.kafka.clients import confluent_config
from stream.settings import ConfigError, load_settings
from stream.worker.faust_config import faust_broker_kwargs

HOTPATH = Path(sys.executable).with_name("hotpath")


@pytest.fixture
def ca_bundle() -> str:
    """A real PEM CA bundle (certifi comes with the test extras through requests)."""
    return pytest.importorskip("certifi").where()


@pytest.mark.parametrize(("variable", "value"), [
    ("HOTPATH_WINDOW_SIZE_S", "fifteen minutes"),
    ("HOTPATH_WEB_PORT", "99999"),
    ("HOTPATH_SECURITY_PROTOCOL", "TLS"),
    ("HOTPATH_SCORE__P1_MIN", "10"),
])
def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(variable.split("__")[0])


def test_sasl_without_credentials_is_refused(monkeypatch):
    monkeypatch.setenv("HOTPATH_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ConfigError, match="SASL_SSL needs sasl_mechanism and sasl_username"):
        load_settings()


def run_hotpath(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("HOTPATH_")}
    return subprocess.run([str(HOTPATH), *args], capture_output=True, text=True, env={**clean, **env}, timeout=60)


def test_the_cli_with_a_bad_variable_exits_2_with_one_line_and_no_traceback():
    result = run_hotpath("topics", "apply", HOTPATH_WINDOW_STEP_S="-5")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hotpath: configuration error: HOTPATH_WINDOW_STEP_S:")
    assert "Traceback" not in result.stderr


def test_the_cli_reports_a_bad_topics_declaration_in_one_line(tmp_path):
    (tmp_path / "topics.yaml").write_text("topics: [{id: findings}]\n")
    result = run_hotpath("topics", "apply", "--dry-run", HOTPATH_TOPICS_DIR=str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"hotpath: configuration error: {tmp_path / 'topics.yaml'}: topics.0.setting: Field required"]


def test_sasl_ssl_settings_configure_both_clients_alike(ca_bundle):
    settings = load_settings(
        bootstrap_servers="kafka-1:9093,kafka-2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="hotpath",
        sasl_password="s3cret-value",
        ssl_ca_file=ca_bundle,
    )
    assert confluent_config(settings) == {
        "bootstrap.servers": "kafka-1:9093,kafka-2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "hotpath",
        "sasl.password": "s3cret-value",
        "ssl.ca.location": ca_bundle,
    }
    faust_kwargs = faust_broker_kwargs(settings)
    assert faust_kwargs["broker"] == "hotpath-kafka://kafka-1:9093;hotpath-kafka://kafka-2:9093"
    credentials = faust_kwargs["broker_credentials"]
    assert isinstance(credentials, SASLCredentials)
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (credentials.username, credentials.password) == ("hotpath", "s3cret-value")
    assert credentials.ssl_context.verify_mode.name == "CERT_REQUIRED"
    assert "s3cret-value" not in repr(settings) + repr(credentials)


def test_ssl_without_sasl_gives_faust_an_ssl_context(ca_bundle):
    settings = load_settings(security_protocol="SSL", ssl_ca_file=ca_bundle)
    credentials = faust_broker_kwargs(settings)["broker_credentials"]
    assert isinstance(credentials, SSLCredentials)
    assert credentials.context.check_hostname
    assert "sasl.username" not in confluent_config(settings)


def test_plaintext_needs_no_credentials():
    settings = load_settings(bootstrap_servers="127.0.0.1:9092")
    assert faust_broker_kwargs(settings) == {"broker": "hotpath-kafka://127.0.0.1:9092"}
    assert confluent_config(settings) == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"}


def test_an_empty_token_is_a_configuration_error_not_an_open_door():
    with pytest.raises(ConfigError, match="^HOTPATH_WEB_TOKEN: "):
        load_settings(web_token="", web_host="0.0.0.0")
