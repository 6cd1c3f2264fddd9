"""What every sink shares: the request it sends, and what the answer means for delivery.

A sink answers in one of three ways that matter: accepted (deliver no more), retry (a rate limit,
a server error or a network error: try again later, after ``Retry-After`` when the server says so),
or permanent (the request itself is wrong: retrying cannot help, so it goes to the dead-letter topic
with the reason). The classification follows PagerDuty's and Opsgenie's documented retry rules.
Redirects are never followed (a redirect to another host would re-send the routing key or the
signed event there): a 3xx answer is permanent.

A reason quotes the answer's body, which may echo the request and its secret. It is masked here,
but not cut: the sink's :meth:`stream.deliver.routing.Secret.redact` removes the secret, masks and
only then cuts it to ``REASON_MAX_CHARS``, so a cut never leaves part of a secret or a card number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import NamedTuple

import orjson

from stream.redact import mask

REASON_MAX_CHARS = 500
# 408 Request Timeout and 425 Too Early say "not now", not "never".
RETRYABLE_CLIENT_STATUSES = frozenset({408, 425, 429})


class HttpRequest(NamedTuple):
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Accepted:
    status: int


@dataclass(frozen=True, slots=True)
class Retry:
    reason: str
    after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Permanent:
    reason: str


Outcome = Accepted | Retry | Permanent


def classify_response(status: int, headers: Mapping[str, str], body: bytes, now: float) -> Outcome:
    """2xx accepted; 408/425/429 and 5xx retry (honouring Retry-After); any other status is permanent."""
    if 200 <= status < 300:
        return Accepted(status)
    if 300 <= status < 400:
        return Permanent(f"HTTP {status}: the sink answered with a redirect, and redirects are not followed "
                         "(configure the sink with the final URL)")
    reason = f"HTTP {status}: {error_detail(body)}"
    if status in RETRYABLE_CLIENT_STATUSES or status >= 500:
        return Retry(reason, parse_retry_after(headers.get("Retry-After"), now))
    return Permanent(reason)


def error_detail(body: bytes) -> str:
    """The useful part of an error answer, masked: ``message`` and ``errors`` of a JSON body, else the text."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and ("message" in data or "errors" in data):
        parts = [str(data.get("message", "")).strip()]
        errors = data.get("errors")
        if isinstance(errors, list):
            parts += [str(error) for error in errors]
        elif isinstance(errors, dict):
            parts += [f"{field}: {error}" for field, error in errors.items()]
        text = "; ".join(part for part in parts if part)
    else:
        text = body.decode("utf-8", errors="replace").strip()
    return mask(" ".join(text.split())) or "(empty body)"


def fit_json(value: object, max_bytes: int) -> object:
    """``value`` when its JSON takes at most ``max_bytes``, else the start of that JSON as a string that takes no more.

    A string's JSON doubles at most the bytes it is made of (quotes and backslashes are escaped), so
    half the budget of JSON text always fits.
    """
    encoded = orjson.dumps(value)
    if len(encoded) <= max_bytes:
        return value
    return encoded[: max_bytes // 2 - 3].decode("utf-8", errors="ignore") + "..."


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def json_request(url: str, document: dict, headers: dict[str, str] | None = None, method: str = "POST") -> HttpRequest:
    """A request with a JSON body (orjson: compact, UTF-8), a POST unless said otherwise."""
    return HttpRequest(method, url, {"Content-Type": "application/json", **(headers or {})}, orjson.dumps(document))
