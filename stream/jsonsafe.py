"""Bounded JSON parsing shared by every JSON decoder: size limit first, then orjson, then depth.

orjson refuses nesting deeper than 1024 levels by itself, so a hostile document cannot exhaust the
stack; the reason it gives is turned into a sentence a user can act on. Real inputs nest about a
dozen levels, and every later walk of a document (decoders, ``orjson.dumps`` of dead letters) costs
stack per level, so documents deeper than ``max_depth`` (64, ``HOTPATH_MAX_JSON_DEPTH``'s default)
are refused too.

The depth check is two counts when the document has no more opening brackets than the limit
(every sample ASFF finding, GuardDuty finding and small OTLP message). Otherwise a document under
64 kB has the bracket skeleton of its already-parsed bytes read, strings left out, innermost ``()``
pairs removed once per level, all in C (``_nests_deeper_than``); a larger one is parsed inside
wrapping arrays so that orjson's own limit does the work (``_parse``).

Writing, :func:`dumps_kept` is for JSON that waits (in a producer's buffer, the worker's table): orjson
3.12 and later return a document of a few hundred bytes in an allocation of 4 KB or more.
"""

from __future__ import annotations

from typing import Any

import orjson

from stream.models import DecodeError

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64
ORJSON_MAX_DEPTH = 1024
_WRAPPED_FROM_BYTES = 64 * 1024
_TOO_DEEP = object()
_TO_PARENTHESES = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS_OR_QUOTES = bytes(sorted(set(range(256)) - set(b'[]{}"')))


def loads(value: bytes | str, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse one JSON document, or raise DecodeError saying why not."""
    if len(value) > max_bytes:
        raise DecodeError(f"record is {len(value)} bytes, over the {max_bytes}-byte limit (HOTPATH_MAX_RECORD_BYTES)")
    if not value or not value.strip():
        raise DecodeError("empty record")
    try:
        document = _parse(value, max_depth)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        if "recursion" in message.lower() or "depth" in message.lower():
            raise DecodeError(_too_deep(max_depth)) from None
        if "utf-8" in message.lower() or "surrogate" in message.lower():
            raise DecodeError("record is not valid UTF-8 JSON") from None
        raise DecodeError(f"not valid JSON: {message}") from None
    if document is _TOO_DEEP:
        raise DecodeError(_too_deep(max_depth))
    return document


def _parse(value: bytes | str, max_depth: int) -> Any:
    """The parsed document, or ``_TOO_DEEP``; orjson's own error when it is not JSON.

    A large document is parsed inside ``1024 - max_depth`` wrapping arrays, so that orjson's own
    depth limit refuses what nests deeper: one copy of the bytes and a constant ~0.2 ms of arrays,
    cheaper from about 64 kB on than reading the bracket skeleton (``_nests_deeper_than``).
    """
    wrap = ORJSON_MAX_DEPTH - max_depth
    if len(value) < _WRAPPED_FROM_BYTES or wrap <= 0:
        document = orjson.loads(value)
        raw = value.encode() if isinstance(value, str) else value
        return _TOO_DEEP if _nests_deeper_than(raw, max_depth) else document
    opening, closing = ("[" * wrap, "]" * wrap) if isinstance(value, str) else (b"[" * wrap, b"]" * wrap)
    try:
        node = orjson.loads(opening + value + closing)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc).lower() or "recursion" in str(exc).lower():
            return _TOO_DEEP
        return orjson.loads(value)  # raises the error with the value's own line and column
    for _ in range(wrap):
        if len(node) != 1:  # the value closed a wrapping array and opened another: not one document
            return orjson.loads(value)
        node = node[0]
    return node


def _nests_deeper_than(value: bytes, max_depth: int) -> bool:
    """True when valid JSON ``value`` nests arrays and objects more than ``max_depth`` levels deep."""
    if value.count(b"[") + value.count(b"{") <= max_depth:
        return False
    if b"\\" in value:  # escaped backslashes first, so what is left of a backslash escapes a quote
        value = value.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Brackets and quotes only; strings with no bracket in them are then adjacent quote pairs. Any
    # quote left after removing those pairs (in one pass from the left) opens a string holding a
    # bracket, and only then are the strings cut out one by one.
    with_quotes = value.translate(_TO_PARENTHESES, _NOT_BRACKETS_OR_QUOTES)
    skeleton = with_quotes.replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = b"".join(with_quotes.split(b'"')[::2])
    for _ in range(max_depth):
        skeleton = skeleton.replace(b"()", b"")
        if not skeleton:
            return False
    return True


def _too_deep(max_depth: int) -> str:
    return f"JSON nested too deeply (over {max_depth} levels)"


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


def dumps_kept(value: Any) -> bytes:
    """``orjson.dumps(value)`` in a bytes object of its own size, for output that is held a while."""
    return bytes(memoryview(orjson.dumps(value)))
