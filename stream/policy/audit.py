"""The audit trail of ``hotpath.audit``: who published which policy, and what it muted, unmuted and let expire.

Audit records are derived, never decided: :func:`audit_records` reads escalation events as the worker
publishes them (or replay writes them) and turns each change of suppression into one record, so the
worker and ``hotpath replay --audit-out`` cannot disagree. A ``policy_published`` record is written by
``hotpath policy publish`` (:func:`published_record`), with a unified diff against the previous version.

The JSON Schema in ``topics/schemas/audit.schema.json`` is generated from these models
(:func:`audit_schema`) and a test keeps the two the same.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from stream.models import rfc3339
from stream.redact import mask, mask_cut

# A diff is cut well below Kafka's 1 MB record limit (a character may take 4 bytes of UTF-8).
MAX_DIFF_CHARS = 200_000
MAX_BY_CHARS = 128

# (key, value) of one record of hotpath.audit
Keyed = tuple[str, dict[str, Any]]
SuppressionLookup = Callable[[str], Mapping[str, Any] | None]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    at: str = Field(json_schema_extra={"format": "date-time"})
    """When it happened (RFC 3339): the publication, or the emission of the escalation event."""
    policy_version: str | None
    """The digest of the policy version that published, or judged the event (null without a policy)."""


class PolicyPublished(_Record):
    """A new policy version on hotpath.policy."""

    kind: Literal["policy_published"]
    by: str
    """Who published it (``--by``, else the user running the command), masked."""
    previous_version: str | None
    """The version it replaces (null for the first one)."""
    sources: list[str]
    """The policy files of the version, in the order they apply."""
    diff: str
    """Unified diff of every file against the previous version, masked."""


class SuppressionChange(_Record):
    """A finding muted by a rule, unmuted (rule removed, attack broke through) or whose mute expired."""

    kind: Literal["suppressed", "unsuppressed", "expired"]
    finding_uid: str
    escalation_uid: str
    resource: str
    rule_id: str
    source: str | None
    """The file (or ``hotpath.policy``) the rule came from; null when no longer known."""
    owner: str | None
    reason: str | None
    ticket: str | None
    expires: str | None
    """Last day the rule applied (YYYY-MM-DD), or null."""
    why: Literal["expired", "removed", "attack"] | None = None
    """Why a suppression ended (null on a suppression)."""


class AuditRecord(RootModel[Annotated[PolicyPublished | SuppressionChange, Field(discriminator="kind")]]):
    model_config = ConfigDict(title="hotpath audit record", json_schema_extra={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://hotpath.dev/schemas/audit.schema.json",
    })


def audit_records(events: Iterable[Mapping[str, Any]], suppression_of: SuppressionLookup) -> list[Keyed]:
    """The audit records of escalation events, keyed by finding uid, in the events' order.

    ``suppression_of(finding_uid)`` is the ``suppressed_by`` in force before these events, when known: a
    suppression already in force is not recorded again, and an ending names the owner, reason and ticket
    of what ended (null when no longer known, e.g. after a restart of the worker).
    """
    in_force: dict[str, Mapping[str, Any] | None] = {}
    records = []
    for event in events:
        uid = event["finding_uid"]
        before = in_force[uid] if uid in in_force else suppression_of(uid)
        suppressed_by = event.get("suppressed_by")
        ended = event.get("suppression_ended")
        if ended is not None:  # first: one rule's mute may end as another's begins
            rule = before if before is not None and before.get("rule_id") == ended["rule_id"] else {}
            kind = "expired" if ended["why"] == "expired" else "unsuppressed"
            records.append((uid, _change(event, kind, {**rule, "rule_id": ended["rule_id"]}, ended["why"])))
            before = None
        if suppressed_by is not None and (before is None or before.get("rule_id") != suppressed_by["rule_id"]):
            records.append((uid, _change(event, "suppressed", suppressed_by)))
        in_force[uid] = suppressed_by
    return records


def _change(event: Mapping[str, Any], kind: str, rule: Mapping[str, Any], why: str | None = None) -> dict[str, Any]:
    record = SuppressionChange(
        kind=kind, at=event["emitted_at"], policy_version=event.get("policy_version"),
        finding_uid=event["finding_uid"], escalation_uid=event["escalation_uid"], resource=event["resource"],
        rule_id=rule["rule_id"], source=rule.get("source"), owner=rule.get("owner"), reason=rule.get("reason"),
        ticket=rule.get("ticket"), expires=rule.get("expires"), why=why)
    return record.model_dump()


def published_record(version: str, previous: Mapping[str, str], current: Mapping[str, str], *,
                     previous_version: str | None, by: str, at: datetime) -> Keyed:
    """The ``policy_published`` record of a version, keyed by it; ``previous`` and ``current`` map each
    file's name to its text, in the order the files apply."""
    record = PolicyPublished(kind="policy_published", at=rfc3339(at), policy_version=version,
                             previous_version=previous_version, by=by,
                             sources=[mask(name) for name in current], diff=policy_diff(previous, current))
    return version, record.model_dump()


def policy_diff(previous: Mapping[str, str], current: Mapping[str, str]) -> str:
    """Unified diff of every file, added, changed or removed, masked and cut to ``MAX_DIFF_CHARS``."""
    parts = []
    for name in [*current, *(name for name in previous if name not in current)]:
        before, after = previous.get(name), current.get(name)
        parts.extend(difflib.unified_diff((before or "").splitlines(keepends=True),
                                          (after or "").splitlines(keepends=True),
                                          fromfile=f"a/{name}" if before is not None else "/dev/null",
                                          tofile=f"b/{name}" if after is not None else "/dev/null"))
    text = "".join(line if line.endswith("\n") else line + "\n" for line in parts)
    return mask_cut(text, MAX_DIFF_CHARS)


def audit_schema() -> str:
    """The JSON Schema of an audit record, as ``topics/schemas/audit.schema.json`` holds it."""
    return json.dumps(AuditRecord.model_json_schema(), indent=2) + "\n"

