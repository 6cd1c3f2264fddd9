"""Regular expressions from policy files, matched in linear time.

Patterns come from an operator's file, but they run against check names, resource ids and tags that
an attacker can shape (a finding's resource id, a tag value). Python's ``re`` backtracks, so a pattern
such as ``(a+)+$`` can take exponential time on a crafted id; patterns are compiled with RE2
(google-re2), whose matching time is linear in the text whatever the pattern. RE2 has no
backreferences and no look-around: a pattern using them is refused when the file is read, with RE2's
reason, instead of silently never matching.
"""

from __future__ import annotations

import functools

import re2

MAX_PATTERN_LENGTH = 1024
# RE2 compiles into at most this much memory per pattern, so a pattern like "a{1000}{1000}" is refused.
_MAX_PROGRAM_BYTES = 1 << 20


class PatternError(ValueError):
    """A pattern RE2 cannot compile, with the reason in words."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # the error is raised to the caller; RE2 would also print it to stderr
    options.never_capture = True
    options.max_mem = _MAX_PROGRAM_BYTES
    return options


_OPTIONS = _options()


class Pattern:
    """One compiled pattern; ``search`` finds it anywhere (Prowler), ``fullmatch`` needs the whole text."""

    __slots__ = ("text", "_regexp")

    def __init__(self, text: str):
        if len(text) > MAX_PATTERN_LENGTH:
            raise PatternError(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
        try:
            self._regexp = re2.compile(text, _OPTIONS)
        except re2.error as exc:
            reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            raise PatternError(f"not a regular expression RE2 accepts ({reason})") from None
        self.text = text

    def search(self, subject: str) -> bool:
        return self._regexp.search(subject) is not None

    def fullmatch(self, subject: str) -> bool:
        return self._regexp.fullmatch(subject) is not None

    def __repr__(self) -> str:
        return f"Pattern({self.text!r})"


@functools.lru_cache(maxsize=4096)
def compile_pattern(text: str) -> Pattern:
    """The compiled pattern, shared by every rule that repeats it (files repeat ``*`` and ``.*`` a lot)."""
    return Pattern(text)


def valid_pattern(text: str) -> str:
    """A pydantic validator: the text unchanged, or a ValueError saying why RE2 refuses it."""
    compile_pattern(text)
    return text
