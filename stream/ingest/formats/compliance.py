"""The controls a finding fails and the fix its source advises, read the same way from every format.

Each producer names them its own way (Prowler's ``unmapped.compliance``, ASFF's ``Compliance`` and
``Remediation.Recommendation``, Security Hub's OCSF ``compliance``, the AWS Config rule); the
helpers here turn what they give into ``{framework: [control, ...]}`` and a remediation with a
description and http(s) references, and keep both small whatever the record held: at most
``MAX_FRAMEWORKS`` frameworks of ``MAX_CONTROLS`` controls, names cut to ``NAME_MAX_CHARS`` and
``COMPLIANCE_MAX_CHARS`` of names in all (Prowler's real findings take about 300), the description
cut to ``DESCRIPTION_MAX_CHARS``, at most ``MAX_REFERENCES`` references. The entity state keeps them
for every open finding, so the bounds are what one finding may cost there.

ASFF's ``RelatedRequirements`` are strings that name framework and control together, as Security
Hub writes them: ``"PCI DSS v4.0.1/1.3.1"`` (framework, slash, control) or ``"NIST.800-53.r5 AC-21"``
(framework, space, control). A string with neither is kept under :data:`UNNAMED_FRAMEWORK`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from stream.jsonsafe import expect_dict, expect_list, text
from stream.models import DecodeError

MAX_FRAMEWORKS = 20
MAX_CONTROLS = 20
NAME_MAX_CHARS = 128
COMPLIANCE_MAX_CHARS = 2048
DESCRIPTION_MAX_CHARS = 1024
MAX_REFERENCES = 5
REFERENCE_MAX_CHARS = 512
UNNAMED_FRAMEWORK = "Other"
# Security Hub standards (the part of a standards ARN or id before "/v/"), as a SOC names them.
_STANDARD_NAMES = {
    "aws-foundational-security-best-practices": "AWS Foundational Security Best Practices",
    "cis-aws-foundations-benchmark": "CIS AWS Foundations Benchmark",
    "pci-dss": "PCI DSS",
    "nist-800-53": "NIST SP 800-53",
    "nist-800-171": "NIST SP 800-171",
    "aws-resource-tagging-standard": "AWS Resource Tagging Standard",
    "service-managed-aws-control-tower": "AWS Control Tower",
}


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def compliance_map(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """``(framework, control)`` pairs as ``{framework: [control, ...]}``, in order, de-duplicated and bounded."""
    controls: dict[str, list[str]] = {}
    room = COMPLIANCE_MAX_CHARS
    for framework, control in pairs:
        framework, control = _cut(framework.strip(), NAME_MAX_CHARS), _cut(control.strip(), NAME_MAX_CHARS)
        listed = controls.get(framework)
        cost = len(control) + (0 if listed is not None else len(framework))
        if not framework or not control or cost > room:
            continue
        if listed is None:
            if len(controls) >= MAX_FRAMEWORKS:
                continue
            listed = controls[framework] = []
        if control not in listed and len(listed) < MAX_CONTROLS:
            listed.append(control)
            room -= cost
    return controls


def by_framework(value: Any, what: str) -> list[tuple[str, str]]:
    """The pairs of a ``{framework: [control, ...]}`` object (Prowler's ``unmapped.compliance``)."""
    if value is None:
        return []
    pairs = []
    for framework, controls in expect_dict(value, what).items():
        for control in expect_list(controls, f"{what}.{framework[:40]}"):
            if not isinstance(control, str):
                raise DecodeError(f"{what}.{framework[:40]}: controls must be strings, got {type(control).__name__}")
            pairs.append((framework, control))
    return pairs


def requirement(named: str) -> tuple[str, str]:
    """``(framework, control)`` of one ASFF related requirement (see the module docstring)."""
    for separator in ("/", " "):
        framework, found, control = named.partition(separator)
        if found and framework.strip() and control.strip():
            return framework, control
    return UNNAMED_FRAMEWORK, named


def strings(obj: dict[str, Any], key: str, what: str) -> list[str]:
    """An optional array of strings (``[]`` when absent or null)."""
    items = expect_list(obj.get(key) or [], f"{what} {key}")
    if not all(isinstance(item, str) for item in items):
        raise DecodeError(f"{what}: every item of {key!r} must be a string")
    return items


def standard_name(standard: str) -> str:
    """``standards/pci-dss/v/3.2.1`` (or a standards ARN) as ``PCI DSS v3.2.1``; another text as it is."""
    path = standard.split(":::", 1)[-1].removeprefix("standards/").removeprefix("ruleset/")
    slug, found, version = path.partition("/v/")
    if not found:
        return standard
    return f"{_STANDARD_NAMES.get(slug, slug)} v{version}"


def web_link(reference: str) -> bool:
    """True for an absolute http(s) URL: what a responder can follow (Prowler also lists CLI commands)."""
    try:
        parts = urlsplit(reference)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not any(c.isspace() for c in reference)


def remediation(description: str | None, references: Iterable[str]) -> dict[str, Any] | None:
    """A finding's remediation (bounded, http(s) references only), or None when the source gives neither."""
    links = list(dict.fromkeys(ref for ref in references if len(ref) <= REFERENCE_MAX_CHARS and web_link(ref)))
    description = _cut((description or "").strip(), DESCRIPTION_MAX_CHARS)
    if not description and not links:
        return None
    return {"description": description, "references": links[:MAX_REFERENCES]}


def ocsf_remediation(finding: dict[str, Any], what: str) -> dict[str, Any] | None:
    """The remediation of an OCSF finding: ``remediation.desc`` and ``remediation.references``."""
    advice = finding.get("remediation")
    if advice is None:
        return None
    advice = expect_dict(advice, f"{what} remediation")
    return remediation(text(advice, "desc", f"{what} remediation", required=False),
                       strings(advice, "references", f"{what} remediation"))
