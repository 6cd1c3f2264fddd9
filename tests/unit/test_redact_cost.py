"""Masking costs time in proportion to the text, whatever its shape.

Entity ids, alert subjects and decode failures come from traffic an adversary can shape; a pattern
that rescans text once per starting position turns a few kilobytes into seconds on the event loop.
Each crafted shape below (the worst found for one pattern) is timed against benign text of the same
size, at several sizes, and must cost no more than a small multiple of it: a ratio, never a time.
"""

from __future__ import annotations

import time

import pytest

from stream.redact import mask

SIZES = (2_000, 8_000, 32_000)
# A crafted text may cost this many times benign text of its size; quadratic shapes reach hundreds.
MAX_RATIO = 5.0


def repeated(unit: str, size: int, tail: str = "") -> str:
    return (unit * (size // len(unit) + 1))[:size - len(tail)] + tail


def benign(size: int) -> str:
    """Span names, hosts, paths, ids and times as traces carry them, with a credential-like word or two."""
    line = ("GET /api/v1/orders/20260302/items?page=2 from payments-api.internal to ledger-db.internal:5432 "
            "session 7f3a9c span 1772446800123 auth ok user-agent okhttp/4.12 key rotation 2026-03-02 ")
    return repeated(line, size)


CRAFTED = {
    "digits and spaces": lambda size: repeated("1 ", size),
    "digits and dashes": lambda size: repeated("12-", size),
    "hyphenated name before a credential word": lambda size: repeated("a-", size, " token"),
    "underscored name before a credential word": lambda size: repeated("a_", size, " token"),
    "JSON Web Token prefixes": lambda size: repeated("eyJ-", size),
    "JSON Web Token payload prefixes": lambda size: "eyJaaaa.eyJ" + repeated("-eyJ", size - 11),
    "URL scheme characters": lambda size: repeated("a.", size, "@"),
    "URL user-info prefixes": lambda size: repeated("a://x:", size, "@"),
    "bearer words": lambda size: repeated("bearer ", size),
    "credential word and spaces": lambda size: "token" + " " * (size - 5),
    "key prefixes": lambda size: repeated(" sk_live_xoxb-AKIA", size),
    "a key prefix and a long tail": lambda size: " xoxb-" + repeated("a-", size - 6),
    "every pattern's prefix": lambda size: repeated("1 a-eyJ-token bearer x://y:z sk_live_ AIza ", size, "@"),
}


def cost_ratio(crafted: str, plain: str, runs: int = 15) -> float:
    """How many times longer masking ``crafted`` takes than ``plain``.

    Each is timed in turns with the other, and the fastest of its runs counts: the one least disturbed
    by other work on the machine, which then weighs on both alike.
    """
    fastest = {crafted: float("inf"), plain: float("inf")}
    for _ in range(runs):
        for text in fastest:
            started = time.perf_counter()
            mask(text)
            fastest[text] = min(fastest[text], time.perf_counter() - started)
    return fastest[crafted] / fastest[plain]


@pytest.mark.parametrize("shape", CRAFTED)
def test_crafted_text_costs_a_small_multiple_of_benign_text_of_its_size(shape):
    ratios = {}
    for size in SIZES:
        crafted, plain = CRAFTED[shape](size), benign(size)
        assert len(crafted) == len(plain) == size
        ratios[size] = cost_ratio(crafted, plain)
    assert max(ratios.values()) <= MAX_RATIO, ratios
