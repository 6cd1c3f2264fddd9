"""What a policy changes, finding by finding: the comparison behind ``hotpath policy explain``.

The same inputs are replayed without the policy and with it; each run's escalation events are summed up
per finding (:func:`outcomes`), and :func:`changes` says, in words, what differs: muted (by which rule of
which file, whose, until when), a mute that ended, a priority overridden or a finding no longer (or only
now) escalated, and where a route sends it. Pure: the command does the replaying and printing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stream.policy.rules import PRIORITIES
from stream.redact import mask

ESCALATING_STATES = ("escalated", "updated", "suppressed")


@dataclass
class Outcome:
    """What one run did with one finding."""

    resource: str
    peak: str | None = None
    """The most urgent priority it was escalated (or suppressed) at; None when never."""
    mutes: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    """The suppressed_by of each rule that muted it, by rule id."""
    ended: list[str] = field(default_factory=list)
    routing: Mapping[str, Any] | None = None

    def add(self, event: Mapping[str, Any]) -> None:
        if event["state"] in ESCALATING_STATES and (self.peak is None or _more_urgent(event["priority"], self.peak)):
            self.peak = event["priority"]
        if (suppressed_by := event.get("suppressed_by")) is not None:
            self.mutes[suppressed_by["rule_id"]] = suppressed_by
        if (ended := event.get("suppression_ended")) is not None:
            self.ended.append(f"mute {ended['rule_id']} ended ({ended['why']})")
        if event.get("routing") is not None:
            self.routing = event["routing"]


def _more_urgent(priority: str, than: str) -> bool:
    return PRIORITIES.index(priority) < PRIORITIES.index(than)


def outcomes(events: Iterable[Mapping[str, Any]]) -> dict[str, Outcome]:
    """Each finding's outcome over a run's events, by finding uid, in the order findings first appear."""
    summed: dict[str, Outcome] = {}
    for event in events:
        summed.setdefault(event["finding_uid"], Outcome(event["resource"])).add(event)
    return summed


def changes(without: Mapping[str, Outcome], with_policy: Mapping[str, Outcome]) -> list[str]:
    """One masked line per finding the policy changes: ``UID on RESOURCE: change; change``."""
    lines = []
    for uid in [*with_policy, *(uid for uid in without if uid not in with_policy)]:
        before, after = without.get(uid), with_policy.get(uid)
        resource = (after or before).resource
        said = _differences(before or Outcome(resource), after or Outcome(resource))
        if said:
            lines.append(mask(f"{uid} on {resource}: {'; '.join(said)}"))
    return lines


def _differences(before: Outcome, after: Outcome) -> list[str]:
    said = [_muted(rule) for rule in after.mutes.values()] + after.ended
    if before.peak != after.peak:
        if after.peak is None:
            said.append(f"no longer escalated (was {before.peak})")
        elif before.peak is None:
            said.append(f"escalated only with the policy, at {after.peak}")
        else:
            said.append(f"priority {before.peak} -> {after.peak}")
    if after.routing is not None:
        team = after.routing.get("opsgenie_team")
        said.append(f"routed to {', '.join(after.routing['sinks'])}" + (f" (Opsgenie team {team})" if team else ""))
    return said


def _muted(rule: Mapping[str, Any]) -> str:
    until = f"until {rule['expires']}" if rule.get("expires") else "no expiry"
    ticket = f", ticket {rule['ticket']}" if rule.get("ticket") else ""
    return (f"muted by {rule['rule_id']} ({rule.get('source')}, owner {rule.get('owner')}, {until}{ticket}: "
            f"{rule.get('reason')})")
