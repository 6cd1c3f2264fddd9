"""What the demo shows at the end: the ranked escalations, the accepted risks a policy mutes, the
noise held back, the audit trail, and the story check.

Pure functions over escalation events (the JSON of ``hotpath.escalations``), so ``hotpath demo`` and
the tests that run the scenario through ``hotpath replay`` judge the outcome the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from stream.correlate.lifecycle import PRIORITY_RANK

if TYPE_CHECKING:
    from stream.demo.scenario import Expected
    from stream.models import Asset

_ARN_RESOURCE_PREFIXES = ("db:", "table/", "role/", "security-group/", "instance/", "analyzer/")


def latest(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest version of each finding's escalation (consumers keep the highest version)."""
    out: dict[str, dict[str, Any]] = {}
    for event in events:
        known = out.get(event["finding_uid"])
        if known is None or event["version"] > known["version"]:
            out[event["finding_uid"]] = event
    return out


def _by_urgency(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(events, key=lambda e: (PRIORITY_RANK[e["priority"]], -e["score"], e["resource"], e["finding_uid"]))


def ranked(current: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Escalations still open and paging, most urgent first: priority, then score."""
    return _by_urgency(event for event in current.values() if event["state"] not in ("resolved", "suppressed"))


def muted(current: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Findings a policy suppresses now (scored, shown to the SIEM, paging no one), most urgent first."""
    return _by_urgency(event for event in current.values() if event["state"] == "suppressed")


def suppression_note(suppressed_by: dict[str, Any]) -> str:
    """``suppressed by RULE (owner, ticket, until DAY)``: who accepted the risk, where it is tracked, until when."""
    ticket = suppressed_by.get("ticket") or "no ticket"
    until = f"until {suppressed_by['expires']}" if suppressed_by.get("expires") else "no expiry"
    return f"suppressed by {suppressed_by['rule_id']} ({suppressed_by['owner']}, {ticket}, {until})"


def short_entity(entity: str) -> str:
    """``arn:aws:rds:us-east-1:123:db:ledger`` -> ``rds ledger``; ``service:kyc`` -> ``kyc``."""
    if entity.startswith("service:"):
        return entity.removeprefix("service:")
    parts = entity.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return entity
    resource = parts[5]
    for prefix in _ARN_RESOURCE_PREFIXES:
        resource = resource.removeprefix(prefix)
    return f"{parts[2]} {resource}"


def display_names(assets: Iterable[Asset]) -> dict[str, str]:
    """Readable names for resources known by opaque ids: a security group or instance by its label alias."""
    out = {}
    for asset in assets:
        kind = "sg" if ":security-group/" in asset.id else "ec2" if ":instance/" in asset.id else None
        resource_id = asset.id.rpartition("/")[2]
        label = next((alias for alias in asset.aliases if alias != resource_id), None)
        if kind and label:
            out[asset.id] = f"{kind} {label}"
    return out


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def table(rows: list[dict[str, Any]], width: int = 120, names: dict[str, str] | None = None) -> list[str]:
    """The ranked escalations: priority, score, resource, finding, and the top reasons under each.

    ``names`` gives readable names for some resources (see :func:`display_names`).
    """
    names = names or {}
    lines = [f"{'#':>3}  PRI  SCORE  {'RESOURCE':<34} FINDING"]
    finding_width = max(20, width - 51)
    for index, event in enumerate(rows, 1):
        finding = event["finding"]
        title = finding["title"] if finding["check"] in finding["title"] else f"{finding['check']}  {finding['title']}"
        lines.append(f"{index:>3}  {event['priority']:<4} {event['score']:>5.1f}  "
                     f"{_cut(names.get(event['resource']) or short_entity(event['resource']), 34):<34} "
                     f"{_cut(title, finding_width)}")
        why = " | ".join(event["reasons"][:3])
        lines.append(f"{'':>16}why: {_cut(why, max(20, width - 21))}")
    return lines


def accepted_risks(rows: list[dict[str, Any]], width: int = 120, names: dict[str, str] | None = None) -> list[str]:
    """The suppressed findings (see :func:`muted`): what each would page at, and the rule that mutes it."""
    names = names or {}
    lines = []
    for event in rows:
        resource = names.get(event["resource"]) or short_entity(event["resource"])
        lines.append(f"  {event['priority']:<4} {event['score']:>5.1f}  {_cut(resource, 34):<34} "
                     f"{_cut(event['finding']['check'], max(20, width - 49))}")
        lines.append(f"{'':>13}{_cut(suppression_note(event['suppressed_by']), max(20, width - 13))}")
    return lines


def audit_trail(records: Iterable[dict[str, Any]], width: int = 120) -> list[str]:
    """The ``hotpath.audit`` records, one line each: policy versions published, suppressions and their ends."""
    lines = []
    for record in records:
        version = (record.get("policy_version") or "-")[:12]
        when = f"  {record['at']}  "
        if record["kind"] == "policy_published":
            lines.append(_cut(f"{when}policy_published  version {version} by {record['by']}: "
                              f"{', '.join(record['sources'])}", width))
            continue
        rule = {"rule_id": record["rule_id"], "owner": record["owner"], "ticket": record["ticket"],
                "expires": record["expires"]}
        lines.append(_cut(f"{when}{record['kind']:<16}  {short_entity(record['resource'])}, policy version {version}",
                          width))
        lines.append(_cut(f"{'':<6}{suppression_note(rule).removeprefix('suppressed ')}", width))
    return lines


def held_back(findings_in: int, rows: list[dict[str, Any]], expected: Expected, suppressed: int = 0) -> list[str]:
    """Findings in versus escalated and suppressed: the noise hotpath held back, and why."""
    by_priority = Counter(event["priority"] for event in rows)
    bands = " · ".join(f"{p} {by_priority[p]}" for p in sorted(by_priority, key=PRIORITY_RANK.__getitem__))
    held = findings_in - len(rows) - suppressed
    share = f"{100 * held / findings_in:.0f}%" if findings_in else "-"
    muted_part = f"suppressed by policy: {suppressed}    " if suppressed else ""
    return [
        f"Findings in: {findings_in}    escalated: {len(rows)} ({bands or 'none'})    {muted_part}"
        f"held back: {held} ({share})",
        f"  held back: {len(expected.held)} on resources no traffic touches (critical ones included), "
        f"{len(expected.quiet)} exercised but below the escalation threshold",
    ]


def story_problems(expected: Expected, current: dict[str, dict[str, Any]], paged: Collection[str] = ()) -> list[str]:
    """How the outcome differs from what the scenario promises (empty when it matches).

    ``paged``: the escalation uids a paging sink opened an incident for; no suppressed finding may be among them.
    """
    active = {e["finding_uid"]: e for e in ranked(current)}
    problems = []
    for uid, priority in expected.escalated.items():
        event = active.get(uid)
        if event is None:
            problems.append(f"not escalated, expected {priority}: {uid}")
        elif event["priority"] != priority:
            problems.append(f"escalated at {event['priority']}, expected {priority}: {uid}")
    for uid in sorted(set(active) - set(expected.escalated)):
        kind = ("held" if uid in expected.held else "quiet" if uid in expected.quiet
                else "suppressed" if uid in expected.suppressed else "unknown")
        problems.append(f"escalated at {active[uid]['priority']} but should stay {kind}: {uid}")
    for uid, rule in expected.suppressed.items():
        event = current.get(uid)
        if event is None or event["state"] != "suppressed":
            problems.append(f"not suppressed, expected muted by {rule}: {uid}")
        elif event["suppressed_by"]["rule_id"] != rule:
            problems.append(f"suppressed by {event['suppressed_by']['rule_id']}, expected {rule}: {uid}")
        if event is not None and event["escalation_uid"] in paged:
            problems.append(f"paged although the policy accepts the risk: {uid}")
    order = [e["finding_uid"] for e in ranked(current)]
    top = order[: len(expected.internet_reached)]
    if active and set(top) != set(expected.internet_reached) & set(active):
        problems.append("the findings internet traffic exercises are not the top of the ranking")
    return problems
