"""The dead-letter record: what ``hotpath.dlq`` receives for a record hotpath could not handle.

It says why (``reason``), at which step (``stage``: ``decode`` for input, ``delivery`` for a failed
webhook), where the record came from (topic, partition, offset, key), and carries the value itself,
so the record can be inspected and replayed. The value is cut at ``max_value_bytes`` (a hostile
record can be large); it is kept as text when it is UTF-8, else base64. The shape is
``topics/schemas/dlq.schema.json``.
"""

from __future__ import annotations

import base64
import codecs
from datetime import UTC, datetime
from typing import Any, Literal

from stream.models import rfc3339

Encoding = Literal["utf-8", "base64"]


def _readable(data: bytes, *, cut: bool) -> tuple[str, Encoding]:
    """``data`` as UTF-8 text when it is, else base64.

    A cut can split a multi-byte character; the incomplete tail is then dropped rather than turning
    a text record into base64.
    """
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=not cut), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def dead_letter(
    reason: str,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    max_value_bytes: int,
    stage: str = "decode",
) -> dict[str, Any]:
    """The JSON-ready dead-letter record for one failed record."""
    origin: dict[str, Any] = {"topic": topic, "partition": partition, "offset": offset, "key": None, "key_encoding": None}
    if key is not None:
        origin["key"], origin["key_encoding"] = _readable(key, cut=False)
    record: dict[str, Any] = {
        "reason": reason,
        "stage": stage,
        "origin": origin,
        "value": None,
        "value_encoding": None,
        "value_bytes": 0 if value is None else len(value),
        "value_truncated": value is not None and len(value) > max_value_bytes,
        "failed_at": rfc3339(datetime.now(UTC)),
    }
    if value is not None:
        record["value"], record["value_encoding"] = _readable(value[:max_value_bytes], cut=record["value_truncated"])
    return record
