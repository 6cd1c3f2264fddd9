"""The compliance view: for each framework, the failing controls live traffic exercises now.

Built from the current escalation of each finding (the worker's board, or the end of a replay): a
control is listed when a finding that fails it is escalated now, with its most urgent escalations
first. Suppressed findings are left out (an accepted risk is not a failing control the SOC must act
on; the audit trail records it), and so are resolved ones (no longer exercised). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stream.correlate.lifecycle import PRIORITY_RANK

TOP_ESCALATIONS = 10
LEFT_OUT_STATES = ("suppressed", "resolved")

# framework -> control -> its top escalations (finding_uid, resource, priority, score)
ComplianceView = dict[str, dict[str, list[dict[str, Any]]]]


def compliance_view(events: Iterable[Mapping[str, Any]], top: int = TOP_ESCALATIONS) -> ComplianceView:
    """Frameworks and controls in sorted order, each control's escalations most urgent first (at most ``top``)."""
    view: ComplianceView = {}
    for event in events:
        if event["state"] in LEFT_OUT_STATES:
            continue
        entry = {"finding_uid": event["finding_uid"], "resource": event["resource"], "priority": event["priority"],
                 "score": event["score"]}
        for framework, controls in (event["finding"].get("compliance") or {}).items():
            for control in dict.fromkeys(controls):
                view.setdefault(framework, {}).setdefault(control, []).append(entry)
    return {framework: {control: sorted(entries, key=_urgency)[:top] for control, entries in sorted(controls.items())}
            for framework, controls in sorted(view.items())}


def _urgency(entry: Mapping[str, Any]) -> tuple[int, float, str]:
    return PRIORITY_RANK[entry["priority"]], -float(entry["score"]), entry["finding_uid"]
