"""Bounded JSON parsing shared by every JSON decoder: size limit first, then orjson.

orjson refuses nesting deeper than 1024 levels by itself, so a hostile document cannot exhaust the
stack; the reason it gives is turned into a sentence a user can act on.
"""

from __future__ import annotations

from typing import Any

import orjson

from stream.models import DecodeError

DEFAULT_MAX_BYTES = 8 * 1024 * 1024


def loads(value: bytes | str, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Parse one JSON document, or raise DecodeError saying why not."""
    if len(value) > max_bytes:
        raise DecodeError(f"record is {len(value)} bytes, over the {max_bytes}-byte limit (HOTPATH_MAX_RECORD_BYTES)")
    if not value or not value.strip():
        raise DecodeError("empty record")
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        if "recursion" in message.lower():
            raise DecodeError("JSON nested too deeply (over 1024 levels)") from None
        if "utf-8" in message.lower() or "surrogate" in message.lower():
            raise DecodeError("record is not valid UTF-8 JSON") from None
        raise DecodeError(f"not valid JSON: {message}") from None


def expect_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def expect_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise DecodeError(f"{what} must be a JSON array, got {type(value).__name__}")
    return value


def text(obj: dict[str, Any], key: str, what: str, *, required: bool = True) -> str | None:
    """A string field; a wrong type is a DecodeError naming the field."""
    value = obj.get(key)
    if value is None:
        if required:
            raise DecodeError(f"{what}: missing field {key!r}")
        return None
    if not isinstance(value, str):
        raise DecodeError(f"{what}: field {key!r} must be a string, got {type(value).__name__}")
    return value
