"""The generic webhook: the escalation event as the JSON body, signed with HMAC-SHA256.

Header ``X-Hotpath-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`` with the
sink's shared secret. The timestamp is inside the signed bytes, so a receiver that checks it against
its own clock (:func:`verify_signature`, ``tolerance_s``) refuses replays of old requests; every
attempt is signed afresh, so a retry after a long back-off is still fresh. ``X-Hotpath-Dedup-Key``
carries the escalation uid; with the event's ``version`` it identifies a delivery, which is what a
receiver de-duplicates on (docs/webhook-signature.md). A receiver answering 409 Conflict says it has
the event already, which counts as delivered.

The body is the escalation event as :mod:`stream.deliver.escalation` reads it: masked, every text at
most 1024 characters and every list at most 20 items, so it never exceeds ``BODY_MAX_BYTES`` (1 MiB,
the limit docs/webhook-signature.md promises receivers). A priority change is an ``updated`` event
carrying ``priority`` and ``previous_priority``. A finding a policy muted arrives as it is, a
``suppressed`` event with its ``suppressed_by``: the receiver decides what a mute means to it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

import orjson

from stream.deliver.escalation import Escalation
from stream.deliver.http import Accepted, HttpRequest, Outcome, classify_response
from stream.deliver.routing import Secret
from stream.deliver.sink import SinkKind
from stream.settings import SinkSettings

SIGNATURE_HEADER = "X-Hotpath-Signature"
DEDUP_KEY_HEADER = "X-Hotpath-Dedup-Key"
SIGNATURE_SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300.0
BODY_MAX_BYTES = 1024 * 1024


def signature(body: bytes, secret: str | bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},{SIGNATURE_SCHEME}={digest}"


def verify_signature(header: str | None, body: bytes, secret: str | bytes, tolerance_s: float = DEFAULT_TOLERANCE_S,
                     now: float | None = None) -> bool:
    """What a receiver runs: is ``body`` signed with ``secret``, within ``tolerance_s`` of ``now``?

    Compares in constant time and accepts any of several ``v1`` values, so a sender can sign with an
    old and a new secret while they are rotated. ``now`` defaults to the receiver's clock.
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == SIGNATURE_SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = signature(body, secret, timestamp).rsplit("=", 1)[1]
    # Check every candidate, so the time taken does not tell which one matched.
    matches = [hmac.compare_digest(expected, candidate) for candidate in candidates]
    return any(matches)


def build_request(escalation: Escalation, sink: SinkSettings, secret: Secret, *, now: float) -> HttpRequest:
    """A POST of the escalation event, signed at ``now``."""
    body = orjson.dumps(escalation.model_dump(mode="json", exclude_unset=True))
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(body, secret.reveal(), int(now)),
        DEDUP_KEY_HEADER: escalation.dedup_key,
    }
    return HttpRequest("POST", sink.url or "", headers, body)


def classify(status: int, headers: Mapping[str, str], body: bytes, now: float) -> Outcome:
    """As :func:`stream.deliver.http.classify_response`, plus 409: the receiver already has this delivery."""
    return Accepted(status) if status == 409 else classify_response(status, headers, body, now)


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def event_requests(escalation: Escalation, sink: SinkSettings, secret: Secret, *, now: float,
                   trace_url_template: str) -> list[HttpRequest]:
    """The registry's builder: the event signed at ``now`` (a receiver has no trace links to follow)."""
    return [build_request(escalation, sink, secret, now=now)]


SINK = SinkKind("webhook", event_requests, classify, default_url=None)
