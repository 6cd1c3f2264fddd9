"""deploy/acls/dlq-acls.sh on a real broker that enforces ACLs: only hotpath writes the dead letters,
only the security responders read them, nobody else does either.

The broker is a launcher broker of the test's own with Kafka's StandardAuthorizer and SASL/PLAIN users
for hotpath, a responder and an intruder. The launcher ships the broker's jars, not Kafka's command-line
tools, so the commands the script prints (``DRY_RUN=1``) are read strictly and applied through the admin
API as ``kafka-acls.sh --add`` applies them; what is checked is what each principal can then do.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import uuid

import pytest
from brokers import own_broker
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from paths import ROOT

from stream.demo.ports import free_port

pytestmark = pytest.mark.kafka

SCRIPT = ROOT / "deploy" / "acls" / "dlq-acls.sh"
DLQ = "hotpath.dlq"
PASSWORDS = {"hotpath": "hotpath-secret", "security-responder": "responder-secret",
             "intruder": "intruder-secret"}


def acl_properties(plain: int, sasl: int, controller: int) -> list[str]:
    users = " ".join(f'user_{name}="{password}"' for name, password in PASSWORDS.items())
    return [
        f"listeners=PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl},"
        f"CONTROLLER://127.0.0.1:{controller}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
        "listener.security.protocol.map="
        "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms=PLAIN",
        f"listener.name.sasl_plaintext.plain.sasl.jaas.config="
        f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:ANONYMOUS",  # the plain listener (launcher, controller, the operator applying ACLs)
    ]


def script_commands() -> list[list[str]]:
    """The script's commands, as ``DRY_RUN=1`` prints them."""
    printed = subprocess.run(["bash", str(SCRIPT)], env={**os.environ, "DRY_RUN": "1"}, capture_output=True,
                             text=True, check=True, timeout=30).stdout
    return [shlex.split(line) for line in printed.splitlines()]


def kafka_acls_parser() -> argparse.ArgumentParser:
    """The ``kafka-acls.sh --add`` options the script may use; anything else is an error."""
    parser = argparse.ArgumentParser(prog="kafka-acls.sh", exit_on_error=False, add_help=False)
    parser.add_argument("--add", action="store_true", required=True)
    parser.add_argument("--allow-principal", required=True)
    parser.add_argument("--operation", action="append", required=True, choices=["Read", "Write", "Describe"])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--topic")
    target.add_argument("--group")
    parser.add_argument("--resource-pattern-type", default="literal", choices=["literal", "prefixed"])
    return parser


def bindings(command: list[str]) -> list[AclBinding]:
    assert command[0] == "kafka-acls.sh"
    options = kafka_acls_parser().parse_args(command[1:])
    kind, name = (ResourceType.TOPIC, options.topic) if options.topic else (ResourceType.GROUP, options.group)
    pattern = ResourcePatternType[options.resource_pattern_type.upper()]
    return [AclBinding(kind, name, pattern, options.allow_principal, "*", AclOperation[operation.upper()],
                       AclPermissionType.ALLOW) for operation in options.operation]


@pytest.fixture(scope="module")
def acl_broker():
    plain, sasl, controller = (free_port() for _ in range(3))
    with own_broker("acls", plain, controller, acl_properties(plain, sasl, controller)):
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{plain}"})
        admin.create_topics([NewTopic(DLQ, 1, 1)])[DLQ].result()
        acls = [binding for command in script_commands() for binding in bindings(command)]
        for future in admin.create_acls(acls).values():
            future.result()
        yield f"127.0.0.1:{sasl}"


def client_config(bootstrap: str, user: str) -> dict[str, str]:
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": user, "sasl.password": PASSWORDS[user]}


def write(bootstrap: str, user: str) -> KafkaError | None:
    """Produce one dead letter as ``user``: None when the broker took it, else its refusal."""
    outcome: list[KafkaError | None] = []
    producer = Producer({**client_config(bootstrap, user), "message.timeout.ms": 15_000})
    producer.produce(DLQ, key=user.encode(), value=b'{"reason": "test"}',
                     on_delivery=lambda error, _: outcome.append(error))
    producer.flush(30)
    return outcome[0]


def read(bootstrap: str, user: str, group: str) -> list[bytes] | KafkaError:
    """The keys of the dead letters ``user`` reads with consumer group ``group``, or the refusal."""
    consumer = Consumer({**client_config(bootstrap, user), "group.id": group,
                         "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([DLQ])
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                return message.error()
            return [message.key()]
        return []
    finally:
        consumer.close()


def test_only_hotpath_writes_the_dead_letters(acl_broker):
    assert write(acl_broker, "hotpath") is None
    for user in ("security-responder", "intruder"):
        assert write(acl_broker, user).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_only_the_security_responders_read_the_dead_letters(acl_broker):
    assert write(acl_broker, "hotpath") is None
    group = f"hotpath-dlq-responders-{uuid.uuid4().hex[:8]}"
    assert read(acl_broker, "security-responder", group) == [b"hotpath"]
    for user in ("hotpath", "intruder"):
        refused = read(acl_broker, user, group + "-" + user)
        assert isinstance(refused, KafkaError), refused
        assert refused.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                  KafkaError.GROUP_AUTHORIZATION_FAILED)


def test_responders_read_only_with_their_own_consumer_groups(acl_broker):
    refused = read(acl_broker, "security-responder", f"elsewhere-{uuid.uuid4().hex[:8]}")
    assert isinstance(refused, KafkaError) and refused.code() == KafkaError.GROUP_AUTHORIZATION_FAILED
