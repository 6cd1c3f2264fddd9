"""Prowler's OCSF Detection Findings (``prowler --output-formats json-ocsf``), and the OCSF reading
that Security Hub's OCSF findings share with them.

Prowler writes a JSON array of findings; each is decoded on its own. What hotpath makes of them:

* ``status_code`` FAIL opens the finding and PASS resolves it.
* Muted findings (``status_id`` 3, Suppressed; likewise any other closed OCSF status) are resolved
  whatever their ``status_code``: the team has accepted the risk, so traffic should not page anyone
  about it.
* MANUAL checks (Prowler cannot tell, a person must look) stay visible as *open* findings with
  severity ``informational``: they carry no evidence of a misconfiguration, so they score at the
  bottom of the scale, yet ``hotpath inspect`` and the SIEM still show them.
* The check is ``metadata.event_code``, the finding uid ``finding_info.uid``.
* The controls it fails are ``unmapped.compliance`` (``{"CIS-2.0": ["2.1.5"]}``), the fix is
  ``remediation`` (``desc``, ``references``: only the http(s) ones are kept, Prowler also lists CLI
  commands there); see :mod:`stream.ingest.formats.compliance`.

Resource entities (:func:`ocsf_resource_entity`): an ARN in ``uid`` (or ``uid_alt``) is kept.
Kubernetes resources (Prowler gives them a ``namespace``; their ``uid`` is an opaque object uid)
become ``k8s:pod/NAMESPACE/NAME`` when the resource is a pod (its metadata lists ``containers``, as
for the control-plane pods the apiserver checks look at), else ``k8s:KIND/NAMESPACE/NAME`` (or
``k8s:KIND/NAME`` when cluster-scoped), KIND being the resource type without its ``Kubernetes``
prefix, lower-cased. AWS CloudFormation types go through
:func:`stream.ingest.formats.awsconfig.aws_resource_entity`; anything else is ``TYPE/UID``.

OCSF times are epoch milliseconds, but Prowler writes seconds: both are read (pydantic's rule,
values above 2e10 are milliseconds).
"""

from __future__ import annotations

from typing import Any

from stream.entities.resolve import pod_entity
from stream.ingest.formats.awsconfig import aws_resource_entity
from stream.ingest.formats.compliance import by_framework, compliance_map, ocsf_remediation
from stream.jsonsafe import expect_dict, expect_list, text
from stream.models import SEVERITIES, DecodeError

PROWLER_PRODUCT = "prowler"
_OCSF_SEVERITY = {1: "informational", 2: "low", 3: "medium", 4: "high", 5: "critical", 6: "critical"}
_OCSF_SEVERITY_NAMES = {**{name: name for name in SEVERITIES}, "fatal": "critical"}
# OCSF finding status_id: 1 New, 2 In Progress, 3 Suppressed, 4 Resolved, 5 Archived, 6 Deleted.
_OCSF_CLOSED = {3, 4, 5, 6}
_OCSF_CLOSED_NAMES = {"suppressed", "resolved", "archived", "deleted"}


def section(obj: dict[str, Any], key: str, what: str) -> dict[str, Any]:
    """An optional nested object: ``{}`` when absent or null, a DecodeError when it is not an object."""
    value = obj.get(key)
    return {} if value is None else expect_dict(value, f"{what} {key}")


def integer(obj: dict[str, Any], key: str, what: str) -> int | None:
    """An optional integer field (booleans are not integers here)."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise DecodeError(f"{what}: field {key!r} must be an integer, got {type(value).__name__}")
    return value


def product_of(finding: dict[str, Any]) -> tuple[str, str]:
    """``(metadata.product.uid, metadata.product.name)`` of an OCSF finding, lower-cased."""
    product = section(section(finding, "metadata", "OCSF finding"), "product", "OCSF finding metadata")
    uid = text(product, "uid", "OCSF finding metadata.product", required=False) or ""
    name = text(product, "name", "OCSF finding metadata.product", required=False) or ""
    return uid.lower(), name.lower()


def ocsf_closed(finding: dict[str, Any], what: str) -> bool:
    """True when the finding's own status (``status_id``, else ``status``) says it is closed."""
    status_id = integer(finding, "status_id", what)
    if status_id is not None:
        return status_id in _OCSF_CLOSED
    return (text(finding, "status", what, required=False) or "").lower() in _OCSF_CLOSED_NAMES


def _severity(finding: dict[str, Any], what: str) -> str:
    severity = _OCSF_SEVERITY.get(integer(finding, "severity_id", what) or 0)
    if severity is None:
        name = (text(finding, "severity", what, required=False) or "").lower()
        severity = _OCSF_SEVERITY_NAMES.get(name)
    if severity is None:
        raise DecodeError(f"{what}: no known severity (severity_id 1-6 or severity)")
    return severity


def _kubernetes_entity(resource: dict[str, Any], uid: str, rtype: str | None, what: str) -> str:
    namespace = text(resource, "namespace", what, required=False)
    name = text(resource, "name", what, required=False) or uid
    details = section(section(resource, "data", what), "metadata", f"{what} data")
    if "containers" in details:
        return pod_entity(namespace, name)
    kind = (rtype or "resource").removeprefix("Kubernetes").lower() or "resource"
    return f"k8s:{kind}/{namespace}/{name}" if namespace else f"k8s:{kind}/{name}"


def ocsf_resource_entity(resource: Any, provider: str, region: str | None, account: str | None, what: str) -> str:
    """The entity of one OCSF ``resources[]`` item (see the module docstring)."""
    resource = expect_dict(resource, what)
    uid = text(resource, "uid", what)
    uid_alt = text(resource, "uid_alt", what, required=False)
    for candidate in (uid, uid_alt):
        if candidate and candidate.startswith("arn:"):
            return candidate
    rtype = text(resource, "type", what, required=False)
    if provider == "kubernetes" or "namespace" in resource:
        return _kubernetes_entity(resource, uid, rtype, what)
    if rtype and rtype.startswith("AWS::"):
        owner = section(section(resource, "owner", what), "account", f"{what} owner")
        owner_account = text(owner, "uid", f"{what} owner.account", required=False)
        resource_region = text(resource, "region", what, required=False)
        return aws_resource_entity(rtype, uid, resource_region or region, owner_account or account)
    return f"{rtype}/{uid}" if rtype else uid


def ocsf_finding_fields(finding: dict[str, Any], what: str) -> dict[str, Any]:
    """What every OCSF finding class (Detection 2004, Compliance 2003 ...) says the same way.

    Returns the Finding fields except ``source``, ``check`` and ``status``, which differ by producer.
    """
    info = expect_dict(finding.get("finding_info"), f"{what} finding_info")
    cloud = section(finding, "cloud", what)
    account = text(section(cloud, "account", f"{what} cloud"), "uid", f"{what} cloud.account", required=False)
    region = text(cloud, "region", f"{what} cloud", required=False)
    provider = (text(cloud, "provider", f"{what} cloud", required=False) or "").lower()
    profiles = section(finding, "metadata", what).get("profiles")
    if not provider and isinstance(profiles, list) and "container" in profiles:
        provider = "kubernetes"
    items = expect_list(finding.get("resources", []), f"{what} resources")
    resources = [
        ocsf_resource_entity(item, provider, region, account, f"{what} resources[{index}]")
        for index, item in enumerate(items)
    ]
    if not resources:
        raise DecodeError(f"{what}: no resources")
    observed_at = next(
        (value for value in (
            finding.get("time"), info.get("modified_time"), info.get("created_time"), finding.get("time_dt"),
        ) if value is not None),
        None,
    )
    if observed_at is None:
        raise DecodeError(f"{what}: no time (time or finding_info.modified_time)")
    return {
        "uid": text(info, "uid", f"{what} finding_info"),
        "title": text(info, "title", f"{what} finding_info", required=False)
        or text(finding, "message", what, required=False) or "",
        "severity": _severity(finding, what),
        "resources": list(dict.fromkeys(resources)),
        "account": account or None,
        "region": region or None,
        "observed_at": observed_at,
        "remediation": ocsf_remediation(finding, what),
    }


def prowler_finding(finding: dict[str, Any]) -> dict[str, Any]:
    """The Finding fields of one Prowler OCSF Detection Finding."""
    what = "Prowler finding"
    fields = ocsf_finding_fields(finding, what)
    status_code = text(finding, "status_code", what)
    if status_code not in ("PASS", "FAIL", "MANUAL"):
        raise DecodeError(f"{what}: status_code must be PASS, FAIL or MANUAL, got {status_code[:40]!r}")
    muted = ocsf_closed(finding, what)
    if status_code == "MANUAL":
        fields["severity"] = "informational"
    metadata = expect_dict(finding.get("metadata"), f"{what} metadata")
    return {
        **fields,
        "source": "prowler",
        "check": text(metadata, "event_code", f"{what} metadata"),
        "status": "resolved" if muted or status_code == "PASS" else "open",
        "compliance": compliance_map(by_framework(section(finding, "unmapped", what).get("compliance"),
                                                  f"{what} unmapped.compliance")),
    }
