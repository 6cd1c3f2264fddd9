"""hotpath's OAUTHBEARER tokens without a broker: unsecured JWTs, token files, refreshing, Amazon MSK IAM.

MSK IAM cannot be had locally: its tokens are checked as the signer makes them from a botocore session
given static credentials, and as both clients' hooks hand them over. Logging in to a broker's
unsecured validator with them: tests/broker/test_oauthbearer_login.py.
"""

from __future__ import annotations

import asyncio
import base64
import time
from urllib.parse import parse_qs, urlparse

import pytest
from brokers import oauth_settings
from workers import run_hotpath

from stream.demo.ports import free_port
from stream.kafka.clients import confluent_config
from stream.kafka.oauth import (
    OAuthTokens,
    Token,
    TokenError,
    file_token,
    jwt_claims,
    msk_iam_token,
    unsecured_token,
)
from stream.settings import ConfigError, load_settings
from stream.worker.faust_config import faust_broker_kwargs

ACCESS_KEY, SECRET_KEY, SESSION_TOKEN = "AKIAHOTPATHTEST00001", "hotpath-test-secret-key", "hotpath-session-token"
REGION = "eu-west-1"


@pytest.mark.parametrize("command", [["topics", "apply"], ["worker"]], ids=["topics-apply", "worker"])
def test_an_expired_token_stops_start_up_with_one_line_before_any_connection(tmp_path, command):
    expired = unsecured_token("hotpath", time.time() - 7200, lifetime_s=60).value
    token_file = tmp_path / "token"
    token_file.write_text(expired)
    settings = oauth_settings(f"127.0.0.1:{free_port()}", tmp_path, sasl_oauth_provider="token_file",
                              sasl_oauth_token_file=token_file)
    code, output = run_hotpath(command, settings, tmp_path)

    assert code == 2, output
    assert len(output) == 1, output
    assert f"the OAUTHBEARER token in {token_file} expired" in output[0], output
    assert expired not in output[0], output


def test_an_unsecured_token_is_the_unsigned_jwt_kafkas_validator_expects():
    token = unsecured_token("payments", now=1_800_000_000, lifetime_s=600)
    header, _, signature = token.value.split(".")
    assert base64.urlsafe_b64decode(header + "==") == b'{"alg":"none"}' and signature == ""
    assert jwt_claims(token.value) == {"sub": "payments", "iat": 1_800_000_000, "exp": 1_800_000_600}
    assert token.expires_at == 1_800_000_600 and token.principal == "payments"
    assert token.value not in repr(token)


def test_a_token_file_gives_its_jwt_expiry_and_subject(tmp_path):
    path = tmp_path / "token"
    path.write_text(unsecured_token("ledger", now=1_800_000_000, lifetime_s=900).value + "\n")
    token = file_token(path, now=1_800_000_100)
    assert (token.expires_at, token.principal) == (1_800_000_900, "ledger")

    path.write_text("opaque-token-from-an-identity-provider")
    assert file_token(path, now=1_800_000_100).expires_at == 1_800_000_400  # re-read after five minutes


@pytest.mark.parametrize("content", [b"", b"x" * (64 * 1024 + 1), b"token\x01auth=Bearer other\x01\x01",
                                     b"two words"], ids=["empty", "too-large", "sasl-injection", "space"])
def test_a_token_file_without_a_usable_token_is_refused_in_one_line(tmp_path, content):
    path = tmp_path / "token"
    path.write_bytes(content)
    with pytest.raises(TokenError) as refused:
        file_token(path, now=0)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)
    assert "auth=Bearer" not in str(refused.value)
    with pytest.raises(TokenError, match="cannot read"):
        file_token(tmp_path / "missing", now=0)


def test_tokens_are_fetched_again_only_shortly_before_they_expire():
    now = [1000.0]
    fetched: list[float] = []

    def fetch() -> Token:
        fetched.append(now[0])
        return Token(f"token-{len(fetched)}", now[0] + 300, "hotpath")

    tokens = OAuthTokens(fetch, clock=lambda: now[0])
    assert tokens.current().value == "token-1"
    now[0] += 200
    assert tokens.current().value == "token-1"
    now[0] += 50  # 50 s before expiry: inside the refresh margin
    assert tokens.current().value == "token-2"
    assert fetched == [1000.0, 1250.0]


def test_a_failed_refresh_keeps_the_token_while_it_is_valid_and_says_why(caplog):
    now = [1000.0]
    fetches = iter([Token("token-1", 1300, "hotpath")])

    def fetch() -> Token:
        token = next(fetches, None)
        if token is None:
            raise TokenError("the OAUTHBEARER token in /var/run/token expired 5 s ago")
        return token

    tokens = OAuthTokens(fetch, clock=lambda: now[0])
    assert tokens.current().value == "token-1"
    now[0] = 1280.0  # inside the refresh margin: the refresh fails, the token still works
    assert tokens.current().value == "token-1"
    assert "OAUTHBEARER token refresh failed: the OAUTHBEARER token in /var/run/token expired" in caplog.text
    now[0] = 1300.0
    with pytest.raises(TokenError):
        tokens.current()
    assert "token-1" not in caplog.text


def static_session():
    """A botocore session whose credentials are given, as an assumed role's would be."""
    import botocore.session

    session = botocore.session.Session()
    session.set_credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN)
    return session


def signed_url(token: str) -> tuple[str, dict[str, str]]:
    """The presigned URL an MSK IAM token carries, and its query parameters."""
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    return url, {key: values[0] for key, values in parse_qs(urlparse(url).query).items()}


def test_an_msk_iam_token_is_the_signers_presigned_connect_request_with_the_sessions_credentials():
    before = time.time()
    token = msk_iam_token(REGION, static_session())

    url, query = signed_url(token.value)
    assert urlparse(url).netloc == f"kafka.{REGION}.amazonaws.com"
    assert query["Action"] == "kafka-cluster:Connect"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Credential"].startswith(f"{ACCESS_KEY}/") and f"/{REGION}/kafka-cluster/" in query[
        "X-Amz-Credential"]
    assert query["X-Amz-Security-Token"] == SESSION_TOKEN
    assert len(query["X-Amz-Signature"]) == 64 and SECRET_KEY not in url
    assert before - 60 < token.expires_at - 900 <= time.time()


def test_msk_iam_without_credentials_is_refused_in_one_line():
    import botocore.session

    session = botocore.session.Session()
    session.get_credentials = lambda: None  # a machine with no credential source
    with pytest.raises(TokenError, match="no AWS credentials"):
        msk_iam_token(REGION, session)


def test_msk_iam_credentials_that_cannot_be_had_are_refused_in_one_line():
    import botocore.session
    from botocore.exceptions import CredentialRetrievalError

    def refused():  # as when STS refuses the pod's web identity token
        raise CredentialRetrievalError(provider="assume-role-with-web-identity", error_msg="AccessDenied")

    session = botocore.session.Session()
    session.get_credentials = refused
    with pytest.raises(TokenError) as refusal:
        msk_iam_token(REGION, session)
    assert str(refusal.value).startswith("cannot sign an MSK IAM token: ") and "AccessDenied" in str(refusal.value)
    assert "\n" not in str(refusal.value)


def test_both_clients_hand_the_broker_the_token_the_msk_signer_made(monkeypatch):
    for name, value in (("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
                        ("AWS_SESSION_TOKEN", SESSION_TOKEN)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings = load_settings(bootstrap_servers="b-1.example.kafka.eu-west-1.amazonaws.com:9098",
                             security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER",
                             sasl_oauth_provider="msk_iam", sasl_oauth_aws_region=REGION)

    config = confluent_config(settings)
    assert config["sasl.mechanism"] == "OAUTHBEARER" and "sasl.username" not in config
    value, expires_at, principal, extensions = config["oauth_cb"]("")
    assert signed_url(value)[1]["X-Amz-Credential"].startswith(f"{ACCESS_KEY}/")
    assert expires_at > time.time() + 600 and principal

    credentials = faust_broker_kwargs(settings)["broker_credentials"]
    assert credentials.protocol.value == "SASL_SSL" and credentials.mechanism.value == "OAUTHBEARER"
    from_aiokafka = asyncio.run(credentials.oauth_cb.token())
    assert signed_url(from_aiokafka)[1]["X-Amz-Credential"] == signed_url(value)[1]["X-Amz-Credential"]


def test_msk_iam_without_a_region_stops_start_up_with_one_line(monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    settings = load_settings(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER", sasl_oauth_provider="msk_iam")
    with pytest.raises(ConfigError, match="HOTPATH_SASL_OAUTH_AWS_REGION"):
        confluent_config(settings)


@pytest.mark.parametrize(("given", "named"), [
    ({"security_protocol": "SASL_SSL"}, "sasl_oauth_provider"),
    ({"security_protocol": "SASL_SSL", "sasl_oauth_provider": "token_file"}, "sasl_oauth_token_file"),
    ({"security_protocol": "PLAINTEXT"}, "sasl_oauth_provider"),
], ids=["no-provider", "no-token-file", "no-provider-without-sasl-protocol"])
def test_oauthbearer_settings_missing_their_source_are_refused_in_one_line(given, named):
    with pytest.raises(ConfigError) as refused:
        load_settings(sasl_mechanism="OAUTHBEARER", **given)
    assert named in str(refused.value) and "\n" not in str(refused.value)
