"""What a TLS alert from the broker becomes in hotpath's one-line refusal, without a broker: librdkafka's
error callback as BrokerAdmin reads it."""

from __future__ import annotations

import pytest
from brokers import NO_CLIENT_CERTIFICATE


@pytest.mark.parametrize(("code", "text", "client_cert", "expected"), [
    ("_TRANSPORT", "ssl://127.0.0.1:9093/bootstrap: Receive failed: error:0A000412:SSL routines::ssl/tls alert bad "
     "certificate: SSL alert number 42 (after 0ms in state APIVERSION_QUERY)", False, NO_CLIENT_CERTIFICATE),
    ("_SSL", "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:14094412:SSL routines:ssl3_read_bytes:sslv3 "
     "alert bad certificate: SSL alert number 42", False, NO_CLIENT_CERTIFICATE),
    ("_TRANSPORT", "ssl://127.0.0.1:9093/bootstrap: Receive failed: error:0A00045C:SSL routines::tlsv13 alert "
     "certificate required: SSL alert number 116", False, NO_CLIENT_CERTIFICATE),
    ("_TRANSPORT", "ssl://127.0.0.1:9093/bootstrap: Receive failed: error:0A000418:SSL routines::tlsv1 alert unknown "
     "ca: SSL alert number 48", True, "does not accept the client certificate in HOTPATH_SSL_CERT_FILE"),
    ("_SSL", "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify "
     "failed", False, "refused the connection: "),
    ("_TRANSPORT", "127.0.0.1:9093/bootstrap: Connect to ipv4#127.0.0.1:9093 failed: Connection refused", False, None),
], ids=["tls13-bad-certificate", "tls12-bad-certificate", "certificate-required", "unknown-ca", "untrusted-broker",
        "no-broker"])
def test_a_tls_alert_from_the_broker_is_explained(code, text, client_cert, expected):
    """What BrokerAdmin makes of librdkafka's error callbacks, without a broker."""
    from confluent_kafka import KafkaError

    from stream.kafka.topics import BrokerAdmin

    broker = BrokerAdmin.__new__(BrokerAdmin)  # no AdminClient: only the error callback is exercised
    broker.client_certificate, broker.refusal = client_cert, None
    broker._note(KafkaError(getattr(KafkaError, code), text))
    if expected is None:
        assert broker.refusal is None
    else:
        assert broker.refusal is not None and expected in broker.refusal and "\n" not in broker.refusal
