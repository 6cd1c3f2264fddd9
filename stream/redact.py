"""Masking of card numbers and credentials in text that leaves hotpath for people and other systems.

Escalation events and dead-letter reasons are read by responders, SIEMs and ticket systems, which
must never receive a primary account number or a live credential. Text built from span attributes
(bucket, table and queue names, database namespaces, URL paths, peer services), from alert
subjects and from decode failures passes through :func:`mask` before it is sent:

* a Luhn-valid run of 13 to 19 digits, also written in groups separated by single spaces or dashes,
  keeps only its last four digits (``**** **** **** 1111``), the PCI DSS display rule;
* bearer and basic tokens, JSON Web Tokens, keys that name their kind in their prefix wherever
  they stand (Stripe ``sk_live_``, AWS ``AKIA``, GitHub ``ghp_``, Slack ``xoxb-``, Google ``AIza``),
  ``Authorization`` values (Opsgenie's ``GenieKey`` too), credential-looking ``key=value`` pairs
  (``token``, ``password``, ``api_key``, PagerDuty's ``routing_key``, AWS signatures ...) and the password
  of a URL's user-info become ``[masked]``.

Masking is deterministic, so a masked entity id still names one entity, and idempotent, so text
masked twice reads the same. It runs where entity ids are first made from attribute values (cached
per distinct value) and where reasons are written, not per span: a few microseconds for an id with
no long digit run and no credential keyword. Its cost grows linearly with the text whatever its shape
(hostile traffic shapes these texts), so crafted text costs a small multiple of benign text of its size.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from itertools import accumulate
from typing import Any

MASKED = "[masked]"
_PAN_MIN, _PAN_MAX = 13, 19

# Linear time on hostile text: no pattern below can rescan a stretch of text once per starting position.
# A pattern that must read a whole run (of name characters, of a JWT's parts) only starts where that run
# starts, or starts after it ("://"); atomic groups and possessive quantifiers stop the engine from
# trying the run's shorter prefixes again.

# Digits in groups joined by single spaces or dashes, long enough to hold a card number.
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9](?:[ -]?+[0-9]){12,}+")
_GROUP = re.compile(r"[0-9]+")

# Credential names, as the end of a name (``csrf_token``, ``x-amz-security-token``, ``client_secret``).
_CREDENTIAL_NAME_ENDINGS = (
    "authorization", "apikey", "api_key", "api-key", "token", "secret", "password", "passwd", "pwd",
    "sessionid", "session_id", "session-id", "sig", "signature", "x-amz-credential",
    "routing_key", "routing-key", "routingkey", "integration_key", "integration-key",  # PagerDuty's
)
_ENDS_WITH_CREDENTIAL_NAME = "|".join(f"(?<={re.escape(name)})" for name in _CREDENTIAL_NAME_ENDINGS)
_SECRETS = re.compile(
    # Authorization: Bearer abc / "api_key": "abc" / ?token=abc / csrf_token = abc; a colon counts only
    # after a quote or before a space, so ARNs (``...:secret:NAME``) are left alone. The whole name is
    # read once, from where it starts, and then checked for a credential ending.
    rf"(?i)(?P<name>(?<![\w-])(?>[\w-]+)(?:{_ENDS_WITH_CREDENTIAL_NAME})"
    r"(?:[\"']?\s*+=\s*+|[\"']\s*+:\s*+|:\s++)[\"']?)"
    r"(?P<scheme>(?:bearer|basic|digest|negotiate|geniekey)\s++)?(?P<value>[^\s\"'&;,]++)"
    # a bare "Bearer abc123..." anywhere: the token has a digit, or is too long to be a word
    r"|(?P<bare>\b(?:bearer|basic)\s++)"
    r"(?P<token>(?=(?:[^\W\d]|[.~+/=-])*+\d)[\w.~+/=-]{8,}+|[\w.~+/=-]{20,}+)"
    # JSON Web Tokens: base64url header and payload, both JSON objects, so both start with "eyJ"; read
    # from the start of the name holding it (``jwt-`` in ``jwt-eyJ...``, kept), whose dash-separated
    # parts are passed over whole until one starts with "eyJ"
    r"|(?<![\w-])(?P<before_jwt>(?:(?!eyJ)(?>\w*)-+)*+)(?P<jwt>eyJ[\w-]{4,}+\.eyJ[\w-]{4,}+\.[\w-]*+)"
    # scheme://user:password@host, found from its "://"
    r"|(?P<userinfo>://(?<=[a-z0-9+.-]://)[^/\s:@]++:)(?P<password>[^/\s@]++)(?=@)"
    # keys whose own prefix says what they are, with no name before them: Stripe secret, restricted and
    # webhook keys, AWS access key ids, GitHub tokens, Slack tokens, Google API keys (case as issued)
    r"|(?<![\w-])(?P<known>(?-i:(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,}+|whsec_[0-9A-Za-z]{16,}+"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Za-z])|gh[pousr]_[0-9A-Za-z]{30,}+|github_pat_\w{22,}+"
    r"|xox[abposr]-[0-9A-Za-z-]{10,}+|AIza[\w-]{35}(?![\w-])))"
)
# Every credential pattern above contains one of these (lower-cased); text with none is left alone
# without running the patterns, which cost far more than a few substring tests.
_SECRET_MARKERS = ("auth", "key", "token", "secret", "pass", "pwd", "session", "sig", "credential", "bearer",
                   "basic", "eyj", "@", "_live_", "_test_", "whsec_", "akia", "asia", "ghp_", "gho_", "ghu_",
                   "ghs_", "ghr_", "github_pat_", "xox", "aiza")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def mask(text: str) -> str:
    """``text`` with card numbers and credentials masked (see the module docstring)."""
    text = _DIGIT_RUN.sub(_mask_card_numbers, text)
    return _SECRETS.sub(_mask_secret, text) if _may_hold_credential(text) else text


def mask_fields(value: Any, keep: frozenset[tuple[str, ...]] = frozenset(), path: tuple[str, ...] = ()) -> Any:
    """A JSON-like ``value`` with every string in it masked, dict keys included, except at the ``keep``
    paths (tuples of keys from the top, e.g. ``("evidence", "trace_ids")``): for whole records that leave."""
    if path in keep:
        return value
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {(mask(key) if isinstance(key, str) else key): mask_fields(item, keep, (*path, key))
                for key, item in value.items()}
    if isinstance(value, list):
        return [mask_fields(item, keep, path) for item in value]
    return value


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in ``...`` when cut (fields of bounded length: events, APIs)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def mask_cut(text: str, limit: int) -> str:
    """``text`` masked, then cut to ``limit`` characters (an ellipsis marks the cut).

    Masking first: a cut through a credential would leave a prefix the patterns no longer recognise.
    """
    masked = mask(text)
    return masked if len(masked) <= limit else masked[:max(limit - 1, 0)] + "\u2026"


def _may_hold_credential(text: str) -> bool:
    lowered = text.lower()
    for marker in _SECRET_MARKERS:
        if marker in lowered:
            return True
    return False


def _mask_card_numbers(run: re.Match[str]) -> str:
    """Mask every card number in a run of digit groups.

    A run may hold a card number next to other digits (``order 12 4111 1111 1111 1111``), and which
    stretch is the card cannot be told, so every stretch of whole groups that adds up to 13-19
    digits and passes the Luhn check is masked, all but its last four digits. Each stretch is checked
    in constant time from running Luhn sums, so a long run costs time in proportion to its length.
    """
    text = run.group()
    digits = text.replace(" ", "").replace("-", "")
    ends = [0]  # digits before each group's end, so ``digits[ends[k]:ends[j]]`` is groups k..j-1
    ends.extend(accumulate(len(group) for group in _GROUP.findall(text)))
    sums = _luhn_running_sums(digits)
    hidden_changes = [0] * len(digits)
    for first in range(len(ends) - 1):
        start = ends[first]
        nearby = min(first + _PAN_MAX + 1, len(ends))  # groups hold a digit or more: the last end in reach
        lo = bisect_left(ends, start + _PAN_MIN, first, nearby)
        for end in ends[lo:bisect_right(ends, start + _PAN_MAX, lo, nearby)]:
            counted = sums[(end - 1) % 2]
            if (counted[end] - counted[start]) % 10 == 0:
                hidden_changes[start] += 1
                hidden_changes[end - 4] -= 1
    if not any(hidden_changes):
        return text
    hiding = accumulate(hidden_changes)
    shown = iter(digit if hidden == 0 else "*" for digit, hidden in zip(digits, hiding, strict=True))
    return "".join(next(shown) if char not in " -" else char for char in text)


def _luhn_running_sums(digits: str) -> tuple[list[int], list[int]]:
    """Running Luhn sums of ``digits``: ``sums[parity]`` keeps positions of that parity, doubles the rest.

    Luhn doubles every second digit counting back from the last, which is never doubled, so the Luhn
    sum of ``digits[start:end]`` is ``sums[(end - 1) % 2][end] - sums[(end - 1) % 2][start]``.
    """
    plain = [ord(char) - 48 for char in digits]
    doubled = [value * 2 - 9 if value > 4 else value * 2 for value in plain]
    pairs = list(enumerate(zip(plain, doubled, strict=True)))
    even_kept = accumulate((kept if index % 2 == 0 else twice for index, (kept, twice) in pairs), initial=0)
    odd_kept = accumulate((twice if index % 2 == 0 else kept for index, (kept, twice) in pairs), initial=0)
    return list(even_kept), list(odd_kept)


def _mask_secret(found: re.Match[str]) -> str:
    if found.group("name") is not None:
        return found.group("name") + (found.group("scheme") or "") + MASKED
    if found.group("bare") is not None:
        return found.group("bare") + MASKED
    if found.group("jwt") is not None:
        return found.group("before_jwt") + MASKED
    if found.group("known") is not None:
        return MASKED
    return found.group("userinfo") + MASKED
