"""The dead-letter record: what it keeps of a failed record, checked against topics/schemas/dlq.schema.json.

By default it keeps key and value masked (card numbers, credentials) and binary values not at all; only
an operator's opt-in (``keep_raw``, HOTPATH_DLQ_KEEP_RAW) keeps them as they were.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import jsonschema
import orjson
import pytest
from dead_letters import VALIDATOR
from sensitive import API_TOKEN as TOKEN
from sensitive import PAN_GROUPED as PAN

from stream.kafka.deadletter import MAX_REASON_CHARS, dead_letter, dead_letter_key


def letter(value: bytes | None, key: bytes | None = b"payments-api", limit: int = 64, **extra) -> dict:
    record = dead_letter("not valid JSON: unexpected end of data", topic="hotpath.findings", partition=2,
                         offset=1234, key=key, value=value, max_value_bytes=limit, **extra)
    VALIDATOR.validate(orjson.loads(orjson.dumps(record)))  # as it travels: JSON on hotpath.dlq
    return record


def test_text_record_is_kept_as_text_with_its_origin():
    record = letter(b'{"Findings": [')
    assert record["reason"] == "not valid JSON: unexpected end of data"
    assert record["stage"] == "decode"
    assert record["origin"] == {"topic": "hotpath.findings", "partition": 2, "offset": 1234,
                                "key": "payments-api", "key_encoding": "utf-8"}
    assert (record["value"], record["value_encoding"]) == ('{"Findings": [', "utf-8")
    assert (record["value_bytes"], record["value_truncated"]) == (14, False)
    failed_at = datetime.fromisoformat(record["failed_at"].replace("Z", "+00:00"))
    assert failed_at.tzinfo is not None and abs((datetime.now(UTC) - failed_at).total_seconds()) < 60


def test_binary_record_and_key_are_kept_as_base64_when_the_operator_keeps_raw_values():
    value = b"\x0a\x8f\x01\xff\xfe truncated protobuf"
    record = letter(value, key=b"\xde\xad\xbe\xef", keep_raw=True)
    assert record["value_encoding"] == "base64"
    assert base64.b64decode(record["value"]) == value
    assert record["origin"]["key_encoding"] == "base64"
    assert base64.b64decode(record["origin"]["key"]) == b"\xde\xad\xbe\xef"


@pytest.mark.parametrize("keep_raw", [False, True])
def test_oversized_record_is_cut_and_says_how_big_it_was(keep_raw):
    value = b"x" * 10_000
    record = letter(value, limit=100, keep_raw=keep_raw)
    assert record["value"] == "x" * 100
    assert (record["value_bytes"], record["value_truncated"]) == (10_000, True)
    assert record["value_sha256"] == hashlib.sha256(value).hexdigest()


def test_cut_through_a_multibyte_character_stays_text():
    value = "é".encode() * 100  # two bytes each: a cut at 101 bytes splits one
    record = letter(value, limit=101)
    assert (record["value"], record["value_encoding"]) == ("é" * 50, "utf-8")
    assert record["value_truncated"] is True


def test_record_without_a_key_has_a_null_key():
    record = letter(b"{}", key=None)
    assert (record["origin"]["key"], record["origin"]["key_encoding"]) == (None, None)


def test_tombstone_has_a_null_value():
    record = letter(None, key=b"asset-1")
    assert (record["value"], record["value_encoding"], record["value_bytes"]) == (None, None, 0)
    assert record["value_truncated"] is False and record["value_sha256"] is None


def test_delivery_stage_is_recorded():
    assert letter(b'{"escalation_uid": "hp-0"}', stage="delivery")["stage"] == "delivery"


def test_schema_refuses_a_record_that_breaks_the_contract():
    record = letter(b"{}")
    record["value_encoding"] = "latin-1"
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(record)


# --- masked by default ----------------------------------------------------------------------------------

ROUTING_KEY = "R0ut1ngK3yF0rPag3rDutyServ1ce042"  # a PagerDuty integration key: 32 characters


def test_key_and_value_are_masked_by_default():
    value = f'{{"card": "{PAN}", "api_key": "{TOKEN}", "note": "retry"}}'.encode()
    record = letter(value, key=f"session_id={TOKEN}".encode(), limit=1024)
    assert record["value"] == '{"card": "**** **** **** 1111", "api_key": "[masked]", "note": "retry"}'
    assert record["origin"]["key"] == "session_id=[masked]"
    assert record["value_masked"] is True and record["value_bytes"] == len(value)
    assert record["value_sha256"] == hashlib.sha256(value).hexdigest()  # finds the original on its topic


def test_a_binary_value_or_key_is_left_out_with_its_size_and_digest_by_default():
    value = b"\x0a\x8f\x01\xff\xfe" + PAN.encode()
    record = letter(value, key=b"\xde\xad\xbe\xef")
    assert (record["value"], record["value_encoding"]) == (None, "omitted")
    assert (record["value_bytes"], record["value_sha256"]) == (len(value), hashlib.sha256(value).hexdigest())
    assert (record["origin"]["key"], record["origin"]["key_encoding"]) == (None, "omitted")


def test_the_operator_opt_in_keeps_the_value_as_it_was():
    value = f"card={PAN}".encode()
    record = letter(value, keep_raw=True)
    assert (record["value"], record["value_masked"]) == (f"card={PAN}", False)


@pytest.mark.parametrize("shift", range(0, 40, 3))
def test_a_cut_through_a_card_number_or_credential_comes_after_masking(shift):
    limit = 200
    value = ("x" * (limit - shift) + f" {PAN} routing_key={ROUTING_KEY} ").encode()
    record = letter(value, limit=limit)
    assert len(record["value"].encode()) <= limit and record["value_truncated"] is True
    kept = record["value"].replace(" ", "")
    assert "1111111111" not in kept and "4111" not in kept
    assert not any(ROUTING_KEY[:length] in kept for length in range(4, len(ROUTING_KEY) + 1))


@pytest.mark.parametrize("filler", [0, MAX_REASON_CHARS - 40, MAX_REASON_CHARS - 12, MAX_REASON_CHARS * 3])
def test_a_reason_echoing_a_request_is_masked_before_it_is_cut(filler):
    echoed = f'HTTP 400: {"x" * filler} {{"routing_key": "{ROUTING_KEY}", "card": "{PAN}"}}'
    record = dead_letter(echoed, topic="hotpath.escalations", partition=0, offset=7, key=None, value=None,
                         max_value_bytes=64, stage="delivery")
    VALIDATOR.validate(record)
    assert len(record["reason"]) <= MAX_REASON_CHARS
    assert not any(ROUTING_KEY[:length] in record["reason"] for length in range(4, len(ROUTING_KEY) + 1))
    assert "4111 1111" not in record["reason"]


def test_the_dead_letters_own_key_is_the_origin_key_as_the_letter_keeps_it():
    secret_key = f"session_id={TOKEN}".encode()
    assert dead_letter_key(letter(b"{}", key=secret_key)) == b"session_id=[masked]"
    assert dead_letter_key(letter(b"{}", key=secret_key, keep_raw=True)) == secret_key
    assert dead_letter_key(letter(b"{}", key=b"\xff\xfe", keep_raw=True)) == b"\xff\xfe"
    assert dead_letter_key(letter(b"{}", key=b"\xff\xfe")) is None
    assert dead_letter_key(letter(b"{}", key=None)) is None
