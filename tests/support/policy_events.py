"""Escalation events with the policy's fields (suppressed_by, suppression_ended, routing, compliance), as the
engine writes them under a policy (topics/schemas/escalation.schema.json, issue 17's contract)."""

from __future__ import annotations

from typing import Any

from receivers import escalation_event

VERSION = "a" * 64
CARD = "4111 1111 1111 1111"


def mute(rule_id: str = "exports-accepted", *, reason: str = "public by design: signed statement links",
         expires: str | None = "2026-06-30", ticket: str | None = "RISK-42") -> dict[str, Any]:
    """The ``suppressed_by`` of a mute rule of hotpath's policy file."""
    return {"rule_id": rule_id, "source": "payments.yaml", "policy_version": VERSION, "owner": "payments-team",
            "reason": reason, "ticket": ticket, "expires": expires}


def judged(finding_uid: str = "finding-1", *, state: str = "escalated", suppressed_by: dict | None = None,
           ended: tuple[str, str] | None = None, compliance: dict[str, list[str]] | None = None,
           routing: dict | None = None, **fields: Any) -> dict[str, Any]:
    """An escalation event judged by policy ``VERSION``; ``ended`` is (rule id, why) of a suppression_ended."""
    event = escalation_event(finding_uid, state=state, **fields)
    event["policy_version"] = VERSION
    event["finding"]["compliance"] = compliance or {}
    event["finding"]["remediation"] = None
    if suppressed_by is not None:
        event["suppressed_by"] = suppressed_by
    if ended is not None:
        event["suppression_ended"] = {"rule_id": ended[0], "why": ended[1]}
    if routing is not None:
        event["routing"] = routing
    return event


# hotpath's policy file muting the public exports bucket, and a Prowler mutelist muting every IAM check.
EXPORTS_MUTED = """\
version: 1
mute:
  - id: exports-accepted
    match:
      checks: [s3_bucket_public_access]
      resources: ["arn:aws:s3:::payments-exports"]
    owner: payments-team
    reason: public by design, signed statement links
    ticket: RISK-42
    expires: 2099-12-31
"""
NOTHING_MUTED = "version: 1\n"
IAM_MUTELIST = """\
Mutelist:
  Accounts:
    "*":
      Checks:
        "iam_*":
          Regions: ["*"]
          Resources: ["*"]
"""


def policy_file(folder, name: str, text: str):
    """``text`` written to ``folder/name``; its path."""
    path = folder / name
    path.write_text(text)
    return path
