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
masked twice reads the same. Text with no long digit run and no credential keyword is returned as
it is after two scans in C.
"""

from __future__ import annotations

import re

MASKED = "[masked]"
_PAN_MIN, _PAN_MAX = 13, 19

# Digits in groups joined by single spaces or dashes, long enough to hold a card number.
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){12,}")
_GROUP = re.compile(r"\d+")

_CREDENTIAL_NAMES = (
    r"authorization|proxy-authorization|x-api-key|api[_-]?key|apikey|access[_-]?token|refresh[_-]?token|"
    r"id[_-]?token|auth[_-]?token|token|secret|client[_-]?secret|password|passwd|pwd|session[_-]?id|"
    r"sig|signature|x-amz-signature|x-amz-security-token|x-amz-credential"
)
_SECRETS = re.compile(
    # Authorization: Bearer abc / "authorization": "abc" / token=abc / api_key: abc
    rf"(?i)(?P<name>\b(?:{_CREDENTIAL_NAMES})[\"']?\s*[:=]\s*[\"']?)(?P<scheme>(?:bearer|basic|digest|negotiate)\s+)?"
    r"(?P<value>[^\s\"'&;,]+)"
    # a bare "Bearer abc" anywhere
    r"|(?i:(?P<bare>\b(?:bearer|basic)\s+))(?P<token>[A-Za-z0-9._~+/=-]{8,})"
    # JSON Web Tokens: base64url header and payload, both JSON objects, so both start with "eyJ"
    r"|(?P<jwt>\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*)"
    # scheme://user:password@host
    r"|(?P<userinfo>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)(?P<password>[^/\s@]+)(?=@)"
)
_SECRET_HINT = re.compile(rf"(?i)(?:{_CREDENTIAL_NAMES}|bearer|basic|eyJ|://[^/\s]*@)")


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
    if _DIGIT_RUN.search(text) is not None:
        text = _DIGIT_RUN.sub(_mask_card_numbers, text)
    if _SECRET_HINT.search(text) is not None:
        text = _SECRETS.sub(_mask_secret, text)
    return text


def _mask_card_numbers(run: re.Match[str]) -> str:
    """Mask every card number in a run of digit groups.

    A run may hold a card number next to other digits (``order 12 4111 1111 1111 1111``), so every
    stretch of whole groups that adds up to 13-19 digits is checked, longest first from the left.
    """
    text = run.group()
    groups = [(group.start(), group.end()) for group in _GROUP.finditer(text)]
    masked = list(text)
    start = 0
    while start < len(groups):
        found = _card_number_from(text, groups, start)
        if found is None:
            start += 1
            continue
        first, last = groups[start][0], groups[found][1]
        keep_from = last - 4
        for index in range(first, keep_from):
            if text[index].isdigit():
                masked[index] = "*"
        start = found + 1
    return "".join(masked)


def _card_number_from(text: str, groups: list[tuple[int, int]], start: int) -> int | None:
    """The index of the last group of the longest card number that starts at group ``start``, if any."""
    digits = ""
    candidates = []
    for index in range(start, len(groups)):
        digits += text[groups[index][0]:groups[index][1]]
        if len(digits) > _PAN_MAX:
            break
        if len(digits) >= _PAN_MIN:
            candidates.append((index, digits))
    for index, number in reversed(candidates):
        if luhn_valid(number):
            return index
    return None


def _mask_secret(found: re.Match[str]) -> str:
    if found.group("name") is not None:
        return found.group("name") + (found.group("scheme") or "") + MASKED
    if found.group("bare") is not None:
        return found.group("bare") + MASKED
    if found.group("jwt") is not None:
        return MASKED
    return found.group("userinfo") + MASKED
