"""hotpath's own policy file and the one decision every finding goes through.

A policy file (top-level ``version: 1``) holds three kinds of rule, each with a ``match``:

* ``mute``: who muted what and why (``owner``, ``reason``, ``ticket``), until when (``expires``, a
  date: the rule applies through that day, UTC, and the finding then re-escalates by itself at its
  current priority). An active attack on the muted resource itself (a runtime alert on the entity)
  breaks through a mute unless the rule sets ``break_on_attack: false``.
* ``overrides``: a priority floor or cap, or a severity, for what matches (``environments: [dev]``
  with ``priority_cap: P3``: nothing in dev pages above P3). Several may apply: the most urgent
  floor, then the least urgent cap (a cap is a promise, so it wins over a floor), and the last
  severity given.
* ``routes``: which sinks (by their configured name: a PagerDuty routing key, an Opsgenie team, a
  webhook) receive what matches, by owner, environment, priority or anything else ``match`` can say.
  Every matching route adds its sinks; when none matches, the escalation goes to every sink, as
  without a policy.

Patterns in ``match`` are RE2 regular expressions that must match the whole value (``prod`` does not
match ``nonprod``). A Prowler mutelist becomes mute rules of the same :class:`Policy` (one per entry,
owned by its file), so both kinds share one decision path: :meth:`Policy.decide`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from stream.models import Severity
from stream.policy.mutelist import Mutelist
from stream.policy.patterns import compile_pattern, valid_pattern
from stream.settings import Priority

MAX_RULES = 1000
MAX_VALUES = 100
# Findings whose matching a Policy keeps (about 1 KB each); a worker re-judges its live findings every tick.
MAX_MATCHED_FINDINGS = 4096
PRIORITIES: tuple[Priority, ...] = ("P1", "P2", "P3", "P4", "P5")

Text = Annotated[str, StringConstraints(min_length=1, max_length=512)]
RulePattern = Annotated[str, StringConstraints(min_length=1), AfterValidator(valid_pattern)]
Patterns = Annotated[list[RulePattern], Field(min_length=1, max_length=MAX_VALUES)]
Names = Annotated[list[Text], Field(min_length=1, max_length=MAX_VALUES)]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Match(_Rule):
    """What a rule applies to: every field given must hold; within a field, any one value is enough."""

    checks: Patterns | None = None
    """Check names: the Prowler check id, the Security Hub control id (EC2.8) or the AWS Config rule name."""
    accounts: Patterns | None = None
    """Cloud account ids."""
    regions: Patterns | None = None
    """Cloud regions."""
    resources: Patterns | None = None
    """Resource ids (entity ids) the finding is on."""
    tags: dict[Text, RulePattern] | None = Field(default=None, max_length=MAX_VALUES)
    """Resource tags, from the finding and the asset context: each key's value must match its pattern."""
    environments: Names | None = None
    """Environments of the resource (asset context), compared as text."""
    owners: Names | None = None
    """Owners of the resource (asset context or owner tag), compared as text."""

    def holds(self, facts: FindingFacts) -> bool:
        return (_any_full(self.checks, facts.check) and _any_full(self.accounts, facts.account or "")
                and _any_full(self.regions, facts.region or "") and _any_full(self.resources, facts.resource)
                and _tags_hold(self.tags, facts.tags)
                and (self.environments is None or facts.environment in self.environments)
                and (self.owners is None or facts.owner in self.owners))


def _any_full(patterns: Sequence[str] | None, value: str) -> bool:
    return patterns is None or any(compile_pattern(pattern).fullmatch(value) for pattern in patterns)


def _tags_hold(wanted: Mapping[str, str] | None, tags: Mapping[str, str]) -> bool:
    if wanted is None:
        return True
    return all(key in tags and compile_pattern(pattern).fullmatch(tags[key]) for key, pattern in wanted.items())


class Mute(_Rule):
    """Who muted what and why, until when: a policy's mute rule, or an entry of a Prowler mutelist."""

    id: Text
    """Names the rule in escalations and logs; unique in its file."""
    owner: Text
    """Who answers for the mute (a team or a person)."""
    reason: Text
    """Why the findings are accepted."""
    ticket: Text | None = None
    """The ticket that tracks the accepted risk."""
    expires: date | None = None
    """Last day (UTC) the rule applies; after it the findings re-escalate by themselves."""
    break_on_attack: bool = True
    """Whether a runtime alert on the muted resource itself lifts the mute."""

    def ends_at(self) -> datetime | None:
        """The instant the mute stops applying: midnight UTC after its ``expires`` day."""
        if self.expires is None:
            return None
        return datetime.combine(self.expires + timedelta(days=1), time(0), UTC)

    def expired(self, at: datetime) -> bool:
        end = self.ends_at()
        return end is not None and at >= end


class MuteRule(Mute):
    """Findings that page no one, for a reason someone owns, until a date."""

    match: Match
    """The findings muted."""


class Override(_Rule):
    """A priority floor or cap, or a severity, for the findings matched."""

    id: Text | None = None
    """Names the override in escalations' explanations."""
    match: Match
    """The findings overridden."""
    priority_floor: Priority | None = None
    """The least urgent priority they may have (P2: a P4 becomes P2)."""
    priority_cap: Priority | None = None
    """The most urgent priority they may have (P3: a P1 becomes P3)."""
    severity: Severity | None = None
    """The severity they are scored with, whatever the scanner said."""

    @model_validator(mode="after")
    def _says_something(self) -> Override:
        if self.priority_floor is None and self.priority_cap is None and self.severity is None:
            raise ValueError("an override needs priority_floor, priority_cap or severity")
        if self.priority_floor and self.priority_cap and _rank(self.priority_floor) < _rank(self.priority_cap):
            raise ValueError(f"priority_floor {self.priority_floor} is more urgent than priority_cap "
                             f"{self.priority_cap}: no priority satisfies both")
        return self


class Route(_Rule):
    """Which sinks receive the escalations matched."""

    id: Text | None = None
    """Names the route in logs."""
    match: Match = Match()
    """The findings routed (every finding when empty)."""
    priorities: list[Priority] | None = Field(default=None, min_length=1)
    """Priorities routed, after overrides (every priority when absent)."""
    to: Names
    """Names of the configured sinks (HOTPATH_SINKS) that receive them."""
    opsgenie_team: Text | None = None
    """The Opsgenie team to page as responder, on the Opsgenie sinks of this route."""

    def holds(self, facts: FindingFacts, priority: Priority) -> bool:
        return (self.priorities is None or priority in self.priorities) and self.match.holds(facts)


class PolicyDocument(_Rule):
    """A hotpath policy file."""

    version: Literal[1]
    """The policy file format's version."""
    mute: list[MuteRule] = Field(default=[], max_length=MAX_RULES)
    """Mute rules, in the order they are tried."""
    overrides: list[Override] = Field(default=[], max_length=MAX_RULES)
    """Priority and severity overrides."""
    routes: list[Route] = Field(default=[], max_length=MAX_RULES)
    """Routes to sinks."""

    @field_validator("mute")
    @classmethod
    def _unique_mute_ids(cls, rules: list[MuteRule]) -> list[MuteRule]:
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                raise ValueError(f"mute rule id {rule.id!r} is used twice")
            seen.add(rule.id)
        return rules


def _rank(priority: Priority) -> int:
    return PRIORITIES.index(priority)


@dataclass(frozen=True, slots=True)
class FindingFacts:
    """What a decision reads of a finding on one resource, and of that resource's context."""

    check: str
    resource: str
    severity: Severity
    priority: Priority
    account: str | None = None
    region: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    environment: str | None = None
    owner: str | None = None
    attacked_directly: bool = False
    """A runtime alert concerns the resource itself (not a neighbour on its call path)."""


# The facts a Policy's matching reads: every field but whether an attack concerns the resource itself, which
# decide() weighs at each call (a new field is part of the key unless named here).
_MATCHED_ON = tuple(fact.name for fact in fields(FindingFacts) if fact.name != "attacked_directly")


@dataclass(frozen=True, slots=True)
class Muting:
    """A mute that matched a finding, and the file it comes from."""

    rule: Mute
    source: str


@dataclass(frozen=True, slots=True)
class Routing:
    """Where an escalation goes when a route matched it."""

    sinks: tuple[str, ...]
    opsgenie_team: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of the policy for one finding at one time; the engine applies it, sinks read it."""

    muted_by: Muting | None
    priority: Priority
    severity: Severity
    routing: Routing | None
    """None: no route matched, the escalation goes to every sink."""
    expired: tuple[Muting, ...] = ()
    """Mutes that match the finding but have expired: why it escalates again."""
    broken_through: tuple[Muting, ...] = ()
    """Mutes that match the finding but an attack on the resource lifted."""
    overrides: tuple[str, ...] = ()
    """The ids (or positions) of the overrides applied."""
    notes: tuple[str, ...] = ()
    """What the overrides changed, in words, for the escalation's reasons ("priority capped at P3 by rule dev-cap")."""


@dataclass(frozen=True, slots=True)
class Matched:
    """What the rules say of a finding whatever the time: the mutes that match it (expired or not), the
    overrides' outcome and the route. Only whether each mute has expired, or yields to an attack, is left."""

    mutings: tuple[Muting, ...]
    severity: Severity
    priority: Priority
    overrides: tuple[str, ...]
    notes: tuple[str, ...]
    routing: Routing | None


class MuteSource(Protocol):
    def mutes_for(self, facts: FindingFacts) -> Iterable[Muting]:
        """The mutes that match the finding, expired or not, in file order."""
        ...

    def rules(self) -> Iterable[Mute]:
        """Every mute of the file."""
        ...


@dataclass(frozen=True)
class PolicyMutes:
    """The mute rules of a hotpath policy file."""

    mute_rules: tuple[MuteRule, ...]
    source: str

    def mutes_for(self, facts: FindingFacts) -> Iterable[Muting]:
        return (Muting(rule, self.source) for rule in self.mute_rules if rule.match.holds(facts))

    def rules(self) -> Iterable[Mute]:
        return self.mute_rules


class MutelistMutes:
    """A Prowler mutelist as mute rules: one per entry, owned by the file, never expiring."""

    def __init__(self, mutelist: Mutelist, source: str):
        self.mutelist = mutelist
        self.source = source
        # Built from entries the mutelist model has validated; a label can be longer than a policy's ids may be.
        self.by_entry = {label: Mute.model_construct(id=label, owner=source,
                                                     reason=description or f"Prowler mutelist {source}")
                         for label, description in mutelist.entries()}

    def mutes_for(self, facts: FindingFacts) -> Iterable[Muting]:
        label = self.mutelist.muting_entry(facts.account, facts.check, facts.region, facts.resource, facts.tags)
        return () if label is None else (Muting(self.by_entry[label], self.source),)

    def rules(self) -> Iterable[Mute]:
        return self.by_entry.values()


@dataclass(frozen=True)
class PolicySource:
    """One file a policy was read from, identified by its content."""

    path: str
    kind: Literal["hotpath", "prowler-mutelist"]
    sha256: str
    version: int | None = None


class Policy:
    """Every policy file in force, compiled; :meth:`decide` is pure and cheap enough per finding.

    The worker re-judges each live finding every tick with the same facts, and matching them costs one RE2
    call per pattern of every rule: each Policy keeps what its rules matched for the latest
    MAX_MATCHED_FINDINGS distinct facts. A new policy version is a new Policy, so it matches afresh.
    """

    def __init__(self, sources: Sequence[PolicySource] = (), mutes: Sequence[MuteSource] = (),
                 overrides: Sequence[Override] = (), routes: Sequence[Route] = ()):
        self.sources = tuple(sources)
        self._mutes = tuple(mutes)
        self._overrides = tuple(overrides)
        self._routes = tuple(routes)
        self._matched: dict[tuple, Matched] = {}

    @functools.cached_property
    def digest(self) -> str:
        """One hash of every file's content, in order: which policy an escalation was judged by."""
        return hashlib.sha256("\n".join(source.sha256 for source in self.sources).encode()).hexdigest()

    def decide(self, facts: FindingFacts, at: datetime) -> Decision:
        matched = self.match(facts)
        muted_by, expired, broken = _mute(matched.mutings, facts, at)
        return Decision(muted_by=muted_by, priority=matched.priority, severity=matched.severity,
                        routing=matched.routing, expired=expired, broken_through=broken, overrides=matched.overrides,
                        notes=matched.notes)

    def match(self, facts: FindingFacts) -> Matched:
        """What the rules say of these facts, matched once while they recur (see the class)."""
        key = tuple(tuple(sorted(value.items())) if isinstance(value, Mapping) else value
                    for value in map(facts.__getattribute__, _MATCHED_ON))
        matched = self._matched.get(key)
        if matched is None:
            severity, priority, applied, notes = self._override(facts)
            matched = Matched(tuple(muting for source in self._mutes for muting in source.mutes_for(facts)),
                              severity, priority, applied, notes, self._route(facts, priority))
            if len(self._matched) >= MAX_MATCHED_FINDINGS:
                self._matched.clear()
            self._matched[key] = matched
        return matched

    def next_expiry(self, after: datetime) -> datetime | None:
        """When a mute next stops applying after ``after``: the engine re-decides what it muted then."""
        ends = [end for source in self._mutes for mute in source.rules()
                if (end := mute.ends_at()) is not None and end > after]
        return min(ends, default=None)

    def _override(self, facts: FindingFacts) -> tuple[Severity, Priority, tuple[str, ...], tuple[str, ...]]:
        """The severity and priority after every matching override, their ids, and what changed, in words."""
        severity, applied = facts.severity, []
        floor: tuple[Priority, str] | None = None  # the most urgent floor, and the rule that set it
        cap: tuple[Priority, str] | None = None  # the least urgent cap, and the rule that set it
        severity_by = None
        for position, override in enumerate(self._overrides):
            if not override.match.holds(facts):
                continue
            name = override.id or f"overrides[{position}]"
            applied.append(name)
            if override.severity:
                severity, severity_by = override.severity, name
            if override.priority_floor and (floor is None or _rank(override.priority_floor) < _rank(floor[0])):
                floor = (override.priority_floor, name)
            if override.priority_cap and (cap is None or _rank(override.priority_cap) > _rank(cap[0])):
                cap = (override.priority_cap, name)
        notes = []
        if severity_by and severity != facts.severity:
            notes.append(f"severity set to {severity} (the scanner said {facts.severity}) by rule {severity_by}")
        rank = _rank(facts.priority)
        if floor is not None and _rank(floor[0]) < rank:
            rank = _rank(floor[0])
            notes.append(f"priority raised to {floor[0]} by rule {floor[1]}")
        if cap is not None and _rank(cap[0]) > rank:
            rank = _rank(cap[0])
            notes.append(f"priority capped at {cap[0]} by rule {cap[1]}")
        return severity, PRIORITIES[rank], tuple(applied), tuple(notes)

    def _route(self, facts: FindingFacts, priority: Priority) -> Routing | None:
        matched = [route for route in self._routes if route.holds(facts, priority)]
        if not matched:
            return None
        sinks = tuple(dict.fromkeys(sink for route in matched for sink in route.to))
        team = next((route.opsgenie_team for route in matched if route.opsgenie_team), None)
        return Routing(sinks=sinks, opsgenie_team=team)


def _mute(mutings: Iterable[Muting], facts: FindingFacts,
          at: datetime) -> tuple[Muting | None, tuple[Muting, ...], tuple[Muting, ...]]:
    """The first matching mute in force at ``at``, the expired ones, and the ones an attack on the resource lifts."""
    muted_by, expired, broken = None, [], []
    for muting in mutings:
        if muting.rule.expired(at):
            expired.append(muting)
        elif facts.attacked_directly and muting.rule.break_on_attack:
            broken.append(muting)
        elif muted_by is None:
            muted_by = muting
    return muted_by, tuple(expired), tuple(broken)
