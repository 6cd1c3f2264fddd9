"""The dead-letter record: what ``hotpath.dlq`` receives for a record hotpath could not handle.

It says why (``reason``), at which step (``stage``: ``decode`` for input, ``delivery`` for a failed
webhook), where the record came from (topic, partition, offset, key), and what the value was. The
shape is ``topics/schemas/dlq.schema.json``.

The topic keeps records for days and more people read it than read the input topics, so by default
the value is masked like every other text hotpath sends (card numbers and credentials, see
:mod:`stream.redact`): UTF-8 text is kept masked, a binary value (which cannot be masked) is left out
and only its size and SHA-256 are kept, to find the original on its topic. An operator who needs the
exact bytes to replay them opts in with ``HOTPATH_DLQ_KEEP_RAW=true``: text as it was, binary as base64.
The record key is masked the same way, in the letter and as the dead letter's own Kafka key. The value
is cut at ``max_value_bytes`` (a hostile record can be large), always after masking, so a cut never
splits a credential into a prefix masking misses.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

from stream.models import rfc3339
from stream.redact import mask, mask_cut

Encoding = Literal["utf-8", "base64", "omitted"]
# Dead-letter reasons are one sentence; a sink echoing a whole request is cut to this many characters.
MAX_REASON_CHARS = 2000
# Masking reads this much text past the cut, so a credential or card number straddling the cut is
# recognised whole (none is this long) and masked before the cut.
MASK_LOOKAHEAD_BYTES = 4096


def _text(data: bytes, *, final: bool) -> str | None:
    """``data`` as UTF-8 text, or None when it is not. A multi-byte character split at a cut is dropped."""
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=final)
    except UnicodeDecodeError:
        return None


def _raw(data: bytes, limit: int) -> tuple[str, Encoding]:
    """The first ``limit`` bytes of ``data`` as they were: UTF-8 text when they are, else base64."""
    text = _text(data[:limit], final=len(data) <= limit)
    if text is not None:
        return text, "utf-8"
    return base64.b64encode(data[:limit]).decode("ascii"), "base64"


def _masked(data: bytes, limit: int) -> tuple[str | None, Encoding]:
    """The first ``limit`` bytes of ``data`` masked, or nothing when they are binary.

    The text is masked a little past the cut and cut afterwards (in bytes, then back to whole characters).
    """
    window = data[:limit + MASK_LOOKAHEAD_BYTES]
    text = _text(window, final=len(data) <= len(window))
    if text is None:
        return None, "omitted"
    masked = mask(text).encode()
    return _text(masked[:limit], final=len(masked) <= limit), "utf-8"


def dead_letter(
    reason: str,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    max_value_bytes: int,
    keep_raw: bool = False,
    stage: str = "decode",
) -> dict[str, Any]:
    """The JSON-ready dead-letter record for one failed record; values masked unless ``keep_raw``."""
    readable = _raw if keep_raw else _masked
    origin: dict[str, Any] = {"topic": topic, "partition": partition, "offset": offset,
                              "key": None, "key_encoding": None}
    if key is not None:
        origin["key"], origin["key_encoding"] = readable(key, len(key))
    record: dict[str, Any] = {
        "reason": mask_cut(reason, MAX_REASON_CHARS),
        "stage": stage,
        "origin": origin,
        "value": None,
        "value_encoding": None,
        "value_bytes": 0 if value is None else len(value),
        "value_sha256": None if value is None else hashlib.sha256(value).hexdigest(),
        "value_truncated": value is not None and len(value) > max_value_bytes,
        "value_masked": not keep_raw,
        "failed_at": rfc3339(datetime.now(UTC)),
    }
    if value is not None:
        record["value"], record["value_encoding"] = readable(value, max_value_bytes)
    return record


def dead_letter_key(letter: dict[str, Any]) -> bytes | None:
    """The dead letter's own Kafka key: the origin key as the letter keeps it (masked unless kept raw)."""
    origin = letter["origin"]
    if origin["key_encoding"] == "base64":
        return base64.b64decode(origin["key"])
    return None if origin["key"] is None else origin["key"].encode()
