"""hotpath on SASL/OAUTHBEARER against a broker's unsecured validator, end to end.

A broker of its own is started with the project's launcher: a SASL_PLAINTEXT listener whose only
mechanism is OAUTHBEARER, validated by Kafka's unsecured validator (unsigned JWTs with a subject and an
expiry), beside the plain listener the launcher probes. Both clients (confluent-kafka through
``oauth_cb``, Faust/aiokafka through ``faust.OAuthCredentials``) authenticate there with tokens from
``stream.kafka.oauth``.
"""

from __future__ import annotations

import time

import pytest
from brokers import oauth_settings, own_broker
from roundtrips import agent_receives_what_confluent_sends, worker_escalates_the_scenario
from workers import run_hotpath

from stream.demo.ports import free_port
from stream.kafka.oauth import unsecured_token
from stream.kafka.topics import apply_topics


def oauth_properties(plain: int, sasl: int, controller: int) -> list[str]:
    return [
        f"listeners=PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl},CONTROLLER://127.0.0.1:{controller}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms=OAUTHBEARER",
        "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config="
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
        "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class="
        "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler",
    ]


@pytest.fixture(scope="module")
def oauth_bootstrap() -> str:
    plain, sasl, controller = (free_port() for _ in range(3))
    with own_broker("oauth", plain, controller, oauth_properties(plain, sasl, controller)):
        yield f"127.0.0.1:{sasl}"


@pytest.mark.kafka
async def test_unsecured_tokens_authenticate_both_clients(oauth_bootstrap, tmp_path):
    settings = oauth_settings(oauth_bootstrap, tmp_path, sasl_oauth_provider="unsecured", sasl_username="hotpath")
    assert f"created {settings.topic_findings} (4 partitions)" in apply_topics(settings)
    await agent_receives_what_confluent_sends(settings, settings.topic_findings)


@pytest.mark.kafka
def test_the_worker_runs_end_to_end_with_oauthbearer_tokens(oauth_bootstrap, tmp_path):
    worker_escalates_the_scenario(
        oauth_settings(oauth_bootstrap, tmp_path / "data", sasl_oauth_provider="unsecured"), tmp_path)


@pytest.mark.kafka
async def test_a_token_file_kept_by_a_sidecar_authenticates_both_clients(oauth_bootstrap, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(unsecured_token("hotpath-sidecar", time.time()).value + "\n")
    settings = oauth_settings(oauth_bootstrap, tmp_path, sasl_oauth_provider="token_file",
                              sasl_oauth_token_file=token_file)
    assert f"created {settings.topic_findings} (4 partitions)" in apply_topics(settings)
    await agent_receives_what_confluent_sends(settings, settings.topic_findings)


@pytest.mark.kafka
@pytest.mark.parametrize("command", [["topics", "apply"], ["worker"]], ids=["topics-apply", "worker"])
def test_a_token_the_broker_refuses_stops_the_command_with_one_clear_line(oauth_bootstrap, tmp_path, command):
    token_file = tmp_path / "token"
    token_file.write_text("an-opaque-token-this-broker-cannot-validate")
    settings = oauth_settings(oauth_bootstrap, tmp_path, sasl_oauth_provider="token_file",
                              sasl_oauth_token_file=token_file)
    code, output = run_hotpath(command, settings, tmp_path)

    assert code == 1, output
    assert len(output) == 1, output
    assert "check the HOTPATH_SASL_* and HOTPATH_SSL_* settings" in output[0], output
    assert "an-opaque-token" not in output[0] and "Traceback" not in output[0], output
