"""The dead-letter record: what it keeps of a failed record, checked against topics/schemas/dlq.schema.json."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import orjson
import pytest

from stream.deadletter import dead_letter

SCHEMA = orjson.loads((Path(__file__).resolve().parents[1] / "topics" / "schemas" / "dlq.schema.json").read_bytes())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


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


def test_binary_record_and_key_are_kept_as_base64():
    value = b"\x0a\x8f\x01\xff\xfe truncated protobuf"
    record = letter(value, key=b"\xde\xad\xbe\xef")
    assert record["value_encoding"] == "base64"
    assert base64.b64decode(record["value"]) == value
    assert record["origin"]["key_encoding"] == "base64"
    assert base64.b64decode(record["origin"]["key"]) == b"\xde\xad\xbe\xef"


def test_oversized_record_is_cut_and_says_how_big_it_was():
    value = b"x" * 10_000
    record = letter(value, limit=100)
    assert record["value"] == "x" * 100
    assert (record["value_bytes"], record["value_truncated"]) == (10_000, True)


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
    assert record["value_truncated"] is False


def test_delivery_stage_is_recorded():
    assert letter(b'{"escalation_uid": "hp-0"}', stage="delivery")["stage"] == "delivery"


def test_schema_refuses_a_record_that_breaks_the_contract():
    record = letter(b"{}")
    record["value_encoding"] = "latin-1"
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(record)
