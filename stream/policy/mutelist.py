"""Prowler's mutelist, read unchanged and matched exactly as Prowler matches it.

Teams that run Prowler already keep a mutelist; hotpath reads the same file. The rules follow
Prowler's ``prowler/lib/mutelist/mutelist.py`` (``is_muted``, ``is_muted_in_check``, ``is_excepted``,
``is_item_matched``) and its mutelist documentation:

* ``Accounts`` keys are compared as text: the finding's account, or ``*`` for every account. Every
  matching key is tried, in file order.
* A ``Checks`` key matches when it is ``*``, equals the check, or is found in it as a regular
  expression; a key starting with ``lambda`` is read as ``awslambda`` (Prowler's service rename).
* ``Regions``, ``Resources`` and the ``Exceptions`` lists are regular expressions *searched* in the
  value (``logs`` mutes ``ci-logs-replica``); any one item is enough. Every ``*`` in an item is
  read as ``.*`` before compiling, so ``*`` means "anything".
* ``Tags`` items are searched in the resource's tags written ``key=value | key=value``; every item
  must be found (AND), and one item's alternation ``a=b|c=d`` gives OR. No ``Tags`` means any tags.
* ``Exceptions`` spare a finding when at least one listed field is given and every listed field
  matches. An excepted finding stops the scan of that account's checks: an entry after it in the
  same account cannot mute it, as in Prowler.

Where hotpath differs, it is stricter and says so when the file is read: a pattern RE2 cannot
compile (see :mod:`stream.policy.patterns`) is an error, where Prowler logs it and treats the item
as not matching. A missing account or region is matched as the empty string, as Prowler passes for
providers without regions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from stream.policy.patterns import Pattern, compile_pattern

MAX_ITEMS = 1000
MAX_TEXT = 1024


def prowler_regex(item: str) -> str:
    """An item as Prowler compiles it: every ``*`` becomes ``.*``."""
    return item.replace("*", ".*")


def prowler_check_key(key: str) -> str:
    """A ``Checks`` key as Prowler compares it: Lambda checks are named ``awslambda_*``."""
    return "awslambda" + key[len("lambda"):] if key.startswith("lambda") else key


def _valid_item(item: str) -> str:
    compile_pattern(prowler_regex(item))
    return item


def _valid_check_key(key: str) -> str:
    compile_pattern(prowler_regex(prowler_check_key(key)))
    return key


Item = Annotated[str, AfterValidator(_valid_item)]
CheckKey = Annotated[str, AfterValidator(_valid_check_key)]
Items = Annotated[list[Item], Field(max_length=MAX_ITEMS)]
AccountKey = Annotated[str, StringConstraints(max_length=MAX_TEXT)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MutelistExceptions(_Section):
    accounts: Items = Field(default=[], alias="Accounts")
    regions: Items = Field(default=[], alias="Regions")
    resources: Items = Field(default=[], alias="Resources")
    tags: Items = Field(default=[], alias="Tags")


class MutelistEntry(_Section):
    regions: Items = Field(alias="Regions")
    resources: Items = Field(alias="Resources")
    tags: Items = Field(default=[], alias="Tags")
    exceptions: MutelistExceptions | None = Field(default=None, alias="Exceptions")
    description: str | None = Field(default=None, alias="Description", max_length=MAX_TEXT)


class MutelistAccount(_Section):
    checks: dict[CheckKey, MutelistEntry] = Field(alias="Checks", max_length=MAX_ITEMS)


class MutelistBody(_Section):
    accounts: dict[AccountKey, MutelistAccount] = Field(alias="Accounts", max_length=MAX_ITEMS)


class MutelistDocument(_Section):
    """A Prowler mutelist file: the top-level ``Mutelist`` key and nothing else."""

    mutelist: MutelistBody = Field(alias="Mutelist")


def unroll_tags(tags: Mapping[str, str]) -> str:
    """Tags as Prowler writes them for matching: ``key=value | key=value``."""
    return " | ".join(f"{key}={value}" for key, value in tags.items())


def _compiled(items: Sequence[str]) -> tuple[Pattern, ...]:
    return tuple(compile_pattern(prowler_regex(item)) for item in items)


def _any_found(patterns: tuple[Pattern, ...], text: str) -> bool:
    return any(pattern.search(text) for pattern in patterns)


def _all_found(patterns: tuple[Pattern, ...], text: str) -> bool:
    return bool(patterns) and all(pattern.search(text) for pattern in patterns)


@dataclass(frozen=True, slots=True)
class _Exceptions:
    accounts: tuple[Pattern, ...]
    regions: tuple[Pattern, ...]
    resources: tuple[Pattern, ...]
    tags: tuple[Pattern, ...]

    def spare(self, account: str, region: str, resource: str, tags: str) -> bool:
        listed = [(self.accounts, _any_found, account), (self.regions, _any_found, region),
                  (self.resources, _any_found, resource), (self.tags, _all_found, tags)]
        given = [found(patterns, value) for patterns, found, value in listed if patterns]
        return bool(given) and all(given)


@dataclass(frozen=True, slots=True)
class _Entry:
    account_key: str
    check_key: str
    check_name: str
    check_pattern: Pattern
    regions: tuple[Pattern, ...]
    resources: tuple[Pattern, ...]
    tags: tuple[Pattern, ...]
    exceptions: _Exceptions | None

    @property
    def label(self) -> str:
        return _entry_label(self.account_key, self.check_key)

    def covers_check(self, check: str) -> bool:
        return self.check_key == "*" or check == self.check_name or self.check_pattern.search(check)

    def mutes(self, region: str, resource: str, tags: str) -> bool:
        return (_any_found(self.regions, region) and _any_found(self.resources, resource)
                and _all_found(self.tags, tags))


def _entry(account_key: str, check_key: str, entry: MutelistEntry) -> _Entry:
    check_name = prowler_check_key(check_key)
    exceptions = entry.exceptions
    return _Entry(
        account_key=account_key, check_key=check_key, check_name=check_name,
        check_pattern=compile_pattern(prowler_regex(check_name)),
        regions=_compiled(entry.regions), resources=_compiled(entry.resources),
        tags=_compiled(entry.tags or ["*"]),
        exceptions=None if exceptions is None else _Exceptions(
            _compiled(exceptions.accounts), _compiled(exceptions.regions),
            _compiled(exceptions.resources), _compiled(exceptions.tags)),
    )


class Mutelist:
    """A Prowler mutelist, compiled once; :meth:`muting_entry` says which entry mutes a finding."""

    def __init__(self, document: MutelistDocument):
        self.document = document
        self._accounts: list[tuple[str, list[_Entry]]] = [
            (account_key, [_entry(account_key, check_key, entry) for check_key, entry in account.checks.items()])
            for account_key, account in document.mutelist.accounts.items()
        ]

    def entries(self) -> list[tuple[str, str | None]]:
        """Every entry's label and description, in file order."""
        described = []
        for account_key, account in self.document.mutelist.accounts.items():
            for check_key, entry in account.checks.items():
                described.append((_entry_label(account_key, check_key), entry.description))
        return described

    def muting_entry(self, account: str | None, check: str, region: str | None, resource: str,
                     tags: Mapping[str, str]) -> str | None:
        """The label of the entry that mutes this finding (``Accounts['*'].Checks['ec2_*']``), or None."""
        account, region, tag_text = account or "", region or "", unroll_tags(tags)
        for account_key, entries in self._accounts:
            if account_key in (account, "*"):
                entry = _muting_in_account(entries, account, check, region, resource, tag_text)
                if entry is not None:
                    return entry.label
        return None


def _entry_label(account_key: str, check_key: str) -> str:
    return f"Accounts[{account_key!r}].Checks[{check_key!r}]"


def _muting_in_account(entries: list[_Entry], account: str, check: str, region: str, resource: str,
                       tags: str) -> _Entry | None:
    """Prowler's ``is_muted_in_check``: the first entry that mutes, unless an exception stops the scan first."""
    muting = None
    for entry in entries:
        covers = entry.covers_check(check)
        if covers and entry.exceptions is not None and entry.exceptions.spare(account, region, resource, tags):
            break
        if covers and muting is None and entry.mutes(region, resource, tags):
            muting = entry
    return muting
