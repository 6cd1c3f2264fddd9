"""The escalation lifecycle of one finding: escalated -> updated* -> resolved, versioned.

A pure state machine. ``decide`` returns the transition to emit (or None) and the new state; the
caller stores the state next to the finding, so re-processing the same input after a restart meets
an unchanged state and emits nothing. Each emitted transition bumps ``version``; consumers keep the
highest version per finding uid, and sinks de-duplicate on the escalation uid.

Rules:
- ``escalated`` when an open finding first reaches the escalation threshold (P3 by default);
- ``updated`` when an escalated finding's priority changes while it is still exercised or attacked
  (a lull in traffic does not downgrade it: it keeps its priority until it goes stale);
- ``resolved`` when the source resolves it, or when it has not been exercised for
  ``stale_windows`` windows. A finding that was never escalated resolves silently.
A resolved finding that crosses the threshold again is escalated again, with a higher version.

A policy mute (``Verdict.muted_by``) turns what would page into ``suppressed``, which is published like
any event but pages no one. A suppressed finding is active: it is judged, ticked and goes stale or
resolved as an escalated one does ("resolved" is published, so every reader of its suppressed event
learns it closed). ``suppressed`` is emitted when a mute starts to apply (to a finding about to
escalate, or to one already escalated) or another rule takes over; when no mute applies any more
(expired, removed, or an attack broke through) the finding is ``escalated`` again at its current
priority (the last one seen live, as for a lull), whatever the threshold: it had earned a page.
An escalation an attack lifted a mute for (``Verdict.lifted``) keeps ``lifted`` until it resolves: the
caller then ignores mutes that yield to attacks, so the page an attack caused is not closed by the
mute coming back when the alerts age out of the window while the incident is still being handled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from stream.settings import Priority

Transition = Literal["escalated", "updated", "resolved", "suppressed"]
PRIORITY_RANK: dict[str, int] = {"P1": 1, "P2": 2, "P3": 3, "P4": 4, "P5": 5}


def escalation_uid(finding_uid: str) -> str:
    """The stable dedup key for sinks, derived from the finding uid."""
    return "hp-" + hashlib.sha256(finding_uid.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class EscalationState:
    version: int = 0
    active: bool = False
    priority: Priority | None = None
    score: float = 0.0
    muted_by: str | None = None  # the id of the mute rule the last event (suppressed) was muted by
    lifted: bool = False  # an attack lifted a mute for this escalation: mutes that yield to attacks keep yielding

    @property
    def suppressed(self) -> bool:
        return self.active and self.muted_by is not None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the evidence says about a finding right now."""

    open: bool
    priority: Priority
    score: float
    live: bool  # exercised or attacked in the current window
    stale: bool  # unexercised for stale_windows windows
    muted_by: str | None = None  # the id of the policy's mute rule that applies now
    lifted: bool = False  # an attack on the resource lifts a mute that would apply now


def decide(prev: EscalationState, verdict: Verdict, threshold: Priority) -> tuple[Transition | None, EscalationState]:
    if prev.active:
        if not verdict.open or verdict.stale:
            return "resolved", EscalationState(prev.version + 1, False, prev.priority, prev.score)
        # A mute starting, changing hands or ending, at the priority seen live (the last one through a lull).
        priority, value = (verdict.priority, verdict.score) if verdict.live else (prev.priority, prev.score)
        if verdict.muted_by != prev.muted_by:
            transition: Transition = "escalated" if verdict.muted_by is None else "suppressed"
            return transition, EscalationState(prev.version + 1, True, priority, value, verdict.muted_by,
                                               verdict.lifted and verdict.muted_by is None)
        if verdict.muted_by is None and verdict.live and verdict.priority != prev.priority:
            return "updated", EscalationState(prev.version + 1, True, verdict.priority, verdict.score,
                                              lifted=prev.lifted or verdict.lifted)
        return None, prev
    if verdict.open and verdict.live and PRIORITY_RANK[verdict.priority] <= PRIORITY_RANK[threshold]:
        transition = "escalated" if verdict.muted_by is None else "suppressed"
        return transition, EscalationState(prev.version + 1, True, verdict.priority, verdict.score, verdict.muted_by,
                                           verdict.lifted and verdict.muted_by is None)
    return None, prev
