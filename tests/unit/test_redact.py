"""Card numbers and credentials never reach an escalation or a dead letter unmasked.

Only the span attributes the OTLP decoder reads (its allow-list) can shape an escalation; a card
number or token in any other attribute is never read, and one inside an allow-listed value (a
service or database name) comes out masked. Checked on ``mask`` itself and end to end through the
replay core, which runs the worker's decoder, router and correlator over real SDK-encoded spans.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from engine_harness import Harness, at, finding, touch
from hypothesis import given, settings
from hypothesis import strategies as st
from inputs import config_event
from sensitive import AMEX, API_TOKEN, BARE_KEYS, JWT, PAN, PAN_SPACED, PASSWORD

from stream.commands.main import main
from stream.correlate.replay import replay
from stream.demo.tracegen import TraceBuilder, aws_call, database, http_client
from stream.entities.resolve import EntityResolver
from stream.ingest.formats.otlp import decode_traces
from stream.models import Alert
from stream.redact import luhn_valid, mask
from stream.settings import load_settings

SECRETS = [PAN, PAN_SPACED, AMEX, JWT, API_TOKEN, PASSWORD]
BUCKET = "acme-statements"
TRAFFIC_AT = 1_772_446_800.0  # 2026-03-02T10:20:00Z, minutes after config_event's evaluation


def digits_only(text: str) -> str:
    return re.sub(r"[ -]", "", text)


@pytest.mark.parametrize(("text", "masked"), [
    (f"card {PAN} charged", "card ************1111 charged"),
    (f"pan={PAN_SPACED};", "pan=**** **** **** 0004;"),
    (f"amex {AMEX[:4]}-{AMEX[4:10]}-{AMEX[10:]}", "amex ****-******-*0005"),
    (f"db:postgresql://cards.internal/cards_{PAN}", "db:postgresql://cards.internal/cards_************1111"),
    ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer [masked]"),
    (f"GET /pay?amount=10&access_token={API_TOKEN}&x=1", "GET /pay?amount=10&access_token=[masked]&x=1"),
    (f'{{"api_key": "{API_TOKEN}"}}', '{"api_key": "[masked]"}'),
    (f"id token {JWT} seen", "id token [masked] seen"),
    (f"Bearer {API_TOKEN}", "Bearer [masked]"),
    (f"postgresql://ledger:{PASSWORD}@ledger.internal/ledger", "postgresql://ledger:[masked]@ledger.internal/ledger"),
])
def test_card_numbers_and_credentials_are_masked(text, masked):
    assert mask(text) == masked


@pytest.mark.parametrize("key", BARE_KEYS)
@pytest.mark.parametrize(("before", "after"), [("", ""), ("remediation: rotate ", " now"), ("see (", ")"),
                                                ('{"note": "', '"}')])
def test_a_key_its_prefix_names_is_masked_with_no_credential_name_before_it(key, before, after):
    assert mask(f"{before}{key}{after}") == f"{before}[masked]{after}"


@pytest.mark.parametrize("text", [
    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/ledger-AbCdEf",
    "arn:aws:sqs:eu-west-1:111122223333:payments-events",
    "arn:aws:dynamodb:eu-west-1:111122223333:table/orders-2026-03-02-1234",
    "4111111111111112 is not a card number (its Luhn digit is wrong)",
    "12345678901234567890123 is too long to be one",
    "service:payments-api",
    "Falco: Terminal shell in container on payments-api-7d9f8c6b5-x2k4q 3 min ago",
    "Basic Shell Spawned on a token-less host",
    "task_live_20260302 and risk_test_suite_v2 are names, not keys",
    "AKIAIOSFODNN7EXAMPLEX is one character too long for an access key id",
    "asia-east1 github xoxo",
])
def test_ids_and_plain_text_are_left_alone(text):
    assert mask(text) == text


@pytest.mark.parametrize("neighbour", ["12", "7", "2026 03", "99 1234"])
def test_a_card_number_among_other_digit_groups_shows_no_more_than_its_last_four(neighbour):
    masked = mask(f"order {neighbour} {PAN_SPACED} {neighbour} ok")
    assert masked.startswith("order ") and masked.endswith(" ok")
    assert digits_only(masked).count("0004") == 1 and PAN_SPACED[:-4].split()[0] not in masked
    assert "**** **** ****" in masked


def card_numbers() -> st.SearchStrategy[str]:
    """Luhn-valid 13-19 digit numbers."""
    def with_check_digit(body: str) -> str:
        return next(body + digit for digit in "0123456789" if luhn_valid(body + digit))

    return st.integers(12, 18).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)).map(with_check_digit)


def written(number: str, separator: str, group: int) -> str:
    if not separator:
        return number
    return separator.join(number[i:i + group] for i in range(0, len(number), group))


no_digits = st.text(st.characters(blacklist_categories=("Nd",), blacklist_characters=" -*"), max_size=20)


@settings(max_examples=300, deadline=None)
@given(card_numbers(), st.sampled_from(["", " ", "-"]), st.integers(3, 6), no_digits, no_digits)
def test_any_card_number_in_any_text_keeps_only_its_last_four_digits(number, separator, group, before, after):
    text = before + written(number, separator, group) + after
    masked = mask(text)
    assert number not in digits_only(masked)
    assert masked.startswith(before) and masked.endswith(after)
    assert digits_only(masked).count("*") == len(number) - 4 and number[-4:] in digits_only(masked)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"[a-z:/=_ ]{0,10}(token=|Bearer |\d{4}[ -]?){1,6}[a-z0-9]{0,20}"))
def test_masking_twice_changes_nothing_more(text):
    once = mask(text)
    assert mask(once) == once


# --- end to end: spans carrying secrets, replayed into escalations ----------------------------------


def secret_laden_traffic(builder: TraceBuilder, start: float) -> None:
    """Internet -> edge -> vault -> the statements bucket and a cards database.

    Secrets sit in attributes hotpath never reads (headers, query strings, statements, bodies, user
    ids), and a card number sits in allow-listed ones: vault's service name (so in its peer.service
    too), the database namespace and the path of a URL whose host is all that is read.
    """
    vault = f"vault-{PAN}"
    noise = {
        "http.request.header.authorization": (f"Bearer {API_TOKEN}",),
        "url.query": f"card={PAN}&access_token={JWT}",
        "enduser.id": AMEX,
        "http.request.body": orjson.dumps({"card": PAN_SPACED, "password": PASSWORD}).decode(),
        "user_agent.original": JWT,
    }
    page = builder.server_span("edge", "POST /pay", start=start, client_address="81.2.69.142", attributes=noise)
    call = builder.client_span("edge", "POST", start=start + 0.001, parent=page, attributes={
        **http_client(f"https://vault.internal/cards/{PAN}?token={API_TOKEN}"), "peer.service": vault, **noise})
    served = builder.server_span(vault, "POST /cards", start=start + 0.002, parent=call, client_address="10.0.0.7",
                                 attributes=noise)
    builder.client_span(vault, "PutObject", start=start + 0.003, parent=served,
                        attributes={**aws_call("S3", "PutObject", {"aws.s3.bucket": BUCKET}), **noise})
    builder.client_span(vault, "INSERT", start=start + 0.004, parent=served, attributes={
        **database("postgresql", "cards-db.internal", f"cards_{PAN}",
                   statement=f"INSERT INTO cards VALUES ('{PAN_SPACED}', '{PASSWORD}')"), **noise})


@pytest.fixture(scope="module")
def traffic() -> TraceBuilder:
    builder = TraceBuilder(seed=3)
    for minute in range(3):
        secret_laden_traffic(builder, TRAFFIC_AT + 60 * minute)
    return builder


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_decoded_touches_carry_the_allow_listed_card_number_masked_and_nothing_else(traffic, encoding):
    value = traffic.to_otlp_proto() if encoding == "otlp_proto" else traffic.to_otlp_json()
    batch = decode_traces(value, EntityResolver(), encoding=encoding)

    entities = {touch.entity for touch in batch.touches}
    assert f"db:postgresql://cards-db.internal/cards_{'*' * 12}1111" in entities
    assert f"service:vault-{'*' * 12}1111" in entities
    records = orjson.dumps([touch.to_record() for touch in batch.touches] + [batch.pods]).decode()
    assert not [secret for secret in SECRETS if digits_only(secret) in digits_only(records)]


@pytest.mark.parametrize("suffix", [".pb", ".jsonl"])
def test_no_secret_from_any_span_attribute_reaches_an_escalation(traffic, suffix, tmp_path: Path):
    traces = tmp_path / f"traces{suffix}"
    traces.write_bytes(traffic.to_otlp_proto() if suffix == ".pb" else traffic.to_otlp_json() + b"\n")
    findings = tmp_path / "findings.json"
    findings.write_bytes(orjson.dumps(config_event("NON_COMPLIANT", resource_id=BUCKET)))

    events = list(replay(load_settings(), traces=[traces], findings=[findings]))

    assert events and {event["resource"] for event in events} == {f"arn:aws:s3:::{BUCKET}"}
    assert f"reached from the internet via edge -> vault-{'*' * 12}1111" in events[-1]["reasons"]
    published = orjson.dumps(events).decode()
    assert not [secret for secret in SECRETS if digits_only(secret) in digits_only(published)]


def test_the_replay_and_inspect_commands_write_no_card_number_a_record_carried(traffic, tmp_path: Path, capsys):
    traces = tmp_path / "traces.pb"
    traces.write_bytes(traffic.to_otlp_proto())
    findings = tmp_path / "findings.json"
    findings.write_bytes(orjson.dumps(config_event("NON_COMPLIANT", resource_id=BUCKET, rule=f"rule-{PAN}")))
    out, siem = tmp_path / "escalations.ndjson", tmp_path / "siem.ndjson"

    replayed = main(["replay", "--traces", str(traces), "--findings", str(findings), "--out", str(out),
                     "--siem-out", str(siem)])
    inspected = main(["inspect", str(findings)])

    written = out.read_text() + siem.read_text() + capsys.readouterr().out
    assert (replayed, inspected) == (0, 0) and out.read_text() and f"rule-{'*' * 12}1111" in written
    assert PAN not in digits_only(written)


def test_an_alert_subject_holding_a_card_number_is_masked_in_the_reasons():
    harness = Harness()
    harness.feed(harness.router.finding(finding("f-1", "arn:aws:s3:::acme-statements")))
    harness.traces(touch("arn:aws:s3:::acme-statements", ["service:payments-api"], 10))
    harness.feed(harness.router.alert(Alert(
        uid="a-1", source="falco", rule="Terminal shell in container", severity="high",
        entities=["arn:aws:s3:::acme-statements"], observed_at=at(20), subject=f"card-{PAN_SPACED}-x2k4q")))
    harness.tick()

    reasons = [reason for event in harness.out for reason in event["reasons"] if reason.startswith("Falco")]
    assert reasons and all("card-**** **** **** 0004-x2k4q" in reason for reason in reasons)
    assert PAN_SPACED not in orjson.dumps(harness.out).decode()
