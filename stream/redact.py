"""Masking of card numbers and credentials in text that leaves hotpath for people and other systems.

Escalation events and dead-letter reasons are read by responders, SIEMs and ticket systems, which
must never receive a primary account number or a live credential. Text built from span attributes
(bucket, table and queue names, database namespaces, URL paths, peer services), from alert
subjects and from decode failures passes through :func:`mask` before it is sent:

* a Luhn-valid run of 13 to 19 digits, also written in groups separated by single spaces or dashes,
  keeps only its last four digits (``**** **** **** 1111``), the PCI DSS display rule;
* bearer and basic tokens, JSON Web Tokens, ``Authorization`` values, credential-looking
  ``key=value`` pairs (``token``, ``password``, ``api_key``, AWS signatures ...) and the password of
  a URL's user-info become ``[masked]``.

Masking is deterministic, so a masked entity id still names one entity, and idempotent, so text
masked twice reads the same. It runs where entity ids are first made from attribute values (cached
per distinct value) and where reasons are written, not per span: a few microseconds for an id with
no long digit run and no credential keyword.
"""

from __future__ import annotations

import re

MASKED = "[masked]"
_PAN_MIN, _PAN_MAX = 13, 19

# Digits in groups joined by single spaces or dashes, long enough to hold a card number.
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,}")
_GROUP = re.compile(r"[0-9]+")

_CREDENTIAL_NAMES = (
    r"authorization|proxy-authorization|x-api-key|api[_-]?key|apikey|access[_-]?token|refresh[_-]?token|"
    r"id[_-]?token|auth[_-]?token|token|secret|client[_-]?secret|password|passwd|pwd|session[_-]?id|"
    r"sig|signature|x-amz-signature|x-amz-security-token|x-amz-credential"
)
_SECRETS = re.compile(
    # Authorization: Bearer abc / "api_key": "abc" / ?token=abc / csrf_token = abc; a colon counts only
    # after a quote or before a space, so ARNs (``...:secret:NAME``) are left alone
    rf"(?i)(?P<name>\b[\w-]*?(?:{_CREDENTIAL_NAMES})(?:[\"']?\s*=\s*|[\"']\s*:\s*|:\s+)[\"']?)"
    r"(?P<scheme>(?:bearer|basic|digest|negotiate)\s+)?(?P<value>[^\s\"'&;,]+)"
    # a bare "Bearer abc123..." anywhere: the token has a digit, or is too long to be a word
    r"|(?P<bare>\b(?:bearer|basic)\s+)(?P<token>(?=[\w.~+/=-]*\d)[\w.~+/=-]{8,}|[\w.~+/=-]{20,})"
    # JSON Web Tokens: base64url header and payload, both JSON objects, so both start with "eyJ"
    r"|(?P<jwt>\beyJ[\w-]{4,}\.eyJ[\w-]{4,}\.[\w-]*)"
    # scheme://user:password@host
    r"|(?P<userinfo>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)(?P<password>[^/\s@]+)(?=@)"
)
# Every credential pattern above contains one of these (lower-cased); text with none is left alone
# without running the patterns, which cost far more than a few substring tests.
_SECRET_MARKERS = ("auth", "key", "token", "secret", "pass", "pwd", "session", "sig", "credential", "bearer",
                   "basic", "eyj", "@")


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
    digits and passes the Luhn check is masked, all but its last four digits.
    """
    text = run.group()
    groups = [(group.start(), group.end()) for group in _GROUP.finditer(text)]
    hidden = [False] * len(text)
    for first in range(len(groups)):
        digits = ""
        for last in range(first, len(groups)):
            digits += text[groups[last][0]:groups[last][1]]
            if len(digits) > _PAN_MAX:
                break
            if len(digits) >= _PAN_MIN and luhn_valid(digits):
                shown = _start_of_last_four(text, groups[last][1])
                for index in range(groups[first][0], shown):
                    hidden[index] = True
    return "".join("*" if hide and char.isdigit() else char for char, hide in zip(text, hidden, strict=True))


def _start_of_last_four(text: str, end: int) -> int:
    """Where the last four digits before ``end`` begin (separators may sit between them)."""
    seen = 0
    index = end
    while seen < 4:
        index -= 1
        seen += text[index].isdigit()
    return index


def _mask_secret(found: re.Match[str]) -> str:
    if found.group("name") is not None:
        return found.group("name") + (found.group("scheme") or "") + MASKED
    if found.group("bare") is not None:
        return found.group("bare") + MASKED
    if found.group("jwt") is not None:
        return MASKED
    return found.group("userinfo") + MASKED
