"""hotpath on a secured Kafka: SASL_SSL with SCRAM-SHA-512 and with PLAIN, mutual TLS, a private CA.

A broker of its own is started with the project's launcher: a SASL_SSL listener (SCRAM-SHA-512 and
PLAIN), an SSL listener that requires a client certificate, and a plain listener on loopback that the
launcher probes and the fixture uses to create the SCRAM user (as ``kafka-configs`` would). Its
certificates, a CA, the broker's and a client's, are made here with ``cryptography``. Every client
is configured from one ``Settings`` (``stream.kafka.clients``): the worker runs end to end over SCRAM, and a
wrong password, an untrusted broker or a missing client certificate stops ``hotpath worker`` and
``hotpath topics apply`` with one line instead of a retry storm.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from brokers import NO_CLIENT_CERTIFICATE, own_broker, unique_suffix
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paths import ROOT
from roundtrips import agent_receives_what_confluent_sends, worker_escalates_the_scenario
from workers import settings_env

from stream.demo.ports import free_port
from stream.kafka.topics import TOPIC_SETTINGS, TopicsError, apply_topics
from stream.settings import Settings, load_settings

pytestmark = pytest.mark.kafka

USER, PASSWORD = "hotpath", "hotpath-secret"
WRONG_PASSWORD = "not-the-secret"


@dataclass(frozen=True)
class Pki:
    ca: Path
    broker_keystore: Path  # the broker's private key followed by its certificate (Kafka's PEM key store)
    client_cert: Path
    client_key: Path
    stranger_ca: Path  # a CA that signed nothing the broker presents


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject: str, key, issuer: x509.Certificate | None, issuer_key, *,
                 ca: bool = False) -> x509.Certificate:
    """A certificate for ``subject`` signed by ``issuer`` (self-signed without one), valid for a day."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("ca", "broker", "client", "stranger")}
    ca = _certificate("hotpath test CA", keys["ca"], None, keys["ca"], ca=True)
    stranger = _certificate("someone else's CA", keys["stranger"], None, keys["stranger"], ca=True)
    broker = _certificate("localhost", keys["broker"], ca, keys["ca"])
    client = _certificate(USER, keys["client"], ca, keys["ca"])
    pem = serialization.Encoding.PEM
    files = {
        "ca.pem": ca.public_bytes(pem),
        "stranger-ca.pem": stranger.public_bytes(pem),
        "broker.pem": _key_pem(keys["broker"]) + broker.public_bytes(pem) + ca.public_bytes(pem),
        "client.pem": client.public_bytes(pem),
        "client.key": _key_pem(keys["client"]),
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return Pki(folder / "ca.pem", folder / "broker.pem", folder / "client.pem", folder / "client.key",
               folder / "stranger-ca.pem")


@dataclass(frozen=True)
class SecureBroker:
    sasl_ssl: str  # host:port of the SASL_SSL listener (SCRAM-SHA-512 and PLAIN)
    mtls: str  # host:port of the SSL listener that requires a client certificate
    pki: Pki


def secure_properties(plain: int, sasl_ssl: int, mtls: int, controller: int, pki: Pki) -> list[str]:
    tls = ["ssl.keystore.type=PEM", f"ssl.keystore.location={pki.broker_keystore}",
           "ssl.truststore.type=PEM", f"ssl.truststore.location={pki.ca}"]
    plain_jaas = f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{PASSWORD}";'
    return [
        f"listeners=PLAINTEXT://127.0.0.1:{plain},SASL_SSL://127.0.0.1:{sasl_ssl},MTLS://127.0.0.1:{mtls},"
        f"CONTROLLER://127.0.0.1:{controller}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{plain},SASL_SSL://127.0.0.1:{sasl_ssl},MTLS://127.0.0.1:{mtls}",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL",
        "sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        f"listener.name.sasl_ssl.plain.sasl.jaas.config={plain_jaas}",
        *(f"listener.name.sasl_ssl.{line}" for line in tls),
        *(f"listener.name.mtls.{line}" for line in tls),
        "listener.name.mtls.ssl.client.auth=required",
    ]


def add_scram_user(plain_bootstrap: str) -> None:
    """Create the SCRAM-SHA-512 user through the broker's plain listener, as ``kafka-configs --alter`` does."""
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    from stream.kafka.clients import admin

    upsert = UserScramCredentialUpsertion(USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                          PASSWORD.encode())
    client = admin(load_settings(bootstrap_servers=plain_bootstrap))  # kept until the futures are done
    for future in client.alter_user_scram_credentials([upsert]).values():
        future.result()


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory):
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    plain, sasl_ssl, mtls, controller = (free_port() for _ in range(4))
    with own_broker("secure", plain, controller, secure_properties(plain, sasl_ssl, mtls, controller, pki)):
        add_scram_user(f"127.0.0.1:{plain}")
        yield SecureBroker(f"127.0.0.1:{sasl_ssl}", f"127.0.0.1:{mtls}", pki)


def secure_settings(broker: SecureBroker, data_dir: Path, *, mechanism: str = "SCRAM-SHA-512",
                    password: str = PASSWORD, ca: Path | None = None) -> Settings:
    """Settings on the SASL_SSL listener with every topic and the app id unique to the test."""
    suffix = unique_suffix()
    return load_settings(
        bootstrap_servers=broker.sasl_ssl, security_protocol="SASL_SSL", sasl_mechanism=mechanism,
        sasl_username=USER, sasl_password=password, ssl_ca_file=ca or broker.pki.ca,
        app_id=f"hotpath-secure-{suffix}", data_dir=data_dir, web_port=free_port(),
        **{name: f"s{suffix}-{Settings.model_fields[name].default}" for name in TOPIC_SETTINGS},
    )


def mtls_settings(broker: SecureBroker, data_dir: Path, *, client_cert: bool = True) -> Settings:
    suffix = unique_suffix()
    pki = broker.pki
    certificate = {"ssl_cert_file": pki.client_cert, "ssl_key_file": pki.client_key} if client_cert else {}
    return load_settings(bootstrap_servers=broker.mtls, security_protocol="SSL", ssl_ca_file=pki.ca,
                         app_id=f"hotpath-mtls-{suffix}", topic_findings=f"m{suffix}.findings", data_dir=data_dir,
                         **certificate)


def test_the_worker_runs_end_to_end_over_sasl_ssl_with_scram(secure_broker, tmp_path):
    worker_escalates_the_scenario(secure_settings(secure_broker, tmp_path / "data"), tmp_path)


async def test_plain_over_sasl_ssl_authenticates_both_clients(secure_broker, tmp_path):
    settings = secure_settings(secure_broker, tmp_path, mechanism="PLAIN")
    assert f"created {settings.topic_findings} (4 partitions)" in apply_topics(settings)
    await agent_receives_what_confluent_sends(settings, settings.topic_findings)


async def test_mutual_tls_with_a_client_certificate_serves_both_clients(secure_broker, tmp_path):
    settings = mtls_settings(secure_broker, tmp_path)
    assert f"created {settings.topic_findings} (4 partitions)" in apply_topics(settings)
    await agent_receives_what_confluent_sends(settings, settings.topic_findings)


def test_mutual_tls_without_a_client_certificate_is_refused_in_one_line(secure_broker, tmp_path):
    with pytest.raises(TopicsError) as refused:
        apply_topics(mtls_settings(secure_broker, tmp_path, client_cert=False))
    message = str(refused.value)
    assert "\n" not in message, message
    assert message.startswith(f"Kafka at {secure_broker.mtls} refused the TLS handshake"), message
    assert NO_CLIENT_CERTIFICATE in message, message
    assert "cannot reach Kafka" not in message and "make kafka-up" not in message, message


def run_hotpath(command: list[str], settings: Settings, tmp_path: Path) -> tuple[subprocess.CompletedProcess, float]:
    """``hotpath COMMAND`` in a child process with ``settings``; its result and how long it ran."""
    env = settings_env(settings, data_dir=str(tmp_path / "cli-data"), web_port=free_port())
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "stream.commands.main", *command], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - started


@pytest.mark.parametrize("command", [["worker"], ["topics", "apply"]], ids=["worker", "topics-apply"])
@pytest.mark.parametrize("mistake", ["wrong-password", "untrusted-broker"])
def test_a_refused_login_stops_the_command_with_one_clear_line(secure_broker, tmp_path, command, mistake):
    if mistake == "wrong-password":
        settings, cause = secure_settings(secure_broker, tmp_path, password=WRONG_PASSWORD), "Authentication failed"
    else:
        settings = secure_settings(secure_broker, tmp_path, ca=secure_broker.pki.stranger_ca)
        cause = "certificate verify failed"
    done, seconds = run_hotpath(command, settings, tmp_path)

    output = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 1, output
    assert len(output) == 1, output
    assert cause in output[0] and "check the HOTPATH_SASL_* and HOTPATH_SSL_* settings" in output[0]
    assert WRONG_PASSWORD not in output[0] and "Traceback" not in output[0]
    print(f"hotpath {' '.join(command)} ({mistake}) gave up after {seconds:.1f}s: {output[0]}")


@pytest.mark.parametrize("command", [["worker"], ["topics", "apply"]], ids=["worker", "topics-apply"])
def test_mutual_tls_without_a_client_certificate_stops_the_command_with_one_clear_line(secure_broker, tmp_path,
                                                                                       command):
    done, seconds = run_hotpath(command, mtls_settings(secure_broker, tmp_path, client_cert=False), tmp_path)

    output = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 1, output
    assert len(output) == 1, output
    assert "refused the TLS handshake" in output[0] and NO_CLIENT_CERTIFICATE in output[0], output
    assert "make kafka-up" not in output[0] and "Traceback" not in output[0], output
    print(f"hotpath {' '.join(command)} (no client certificate) gave up after {seconds:.1f}s: {output[0]}")
