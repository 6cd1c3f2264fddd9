"""Falco alerts, as Falco writes them with ``json_output`` and as falcosidekick publishes them.

The two differ only in falcosidekick's ``uuid``, which becomes the alert uid; a raw Falco event gets
a stable hash of (time, rule, hostname, output) instead, so a re-sent event keeps its uid.

Priorities map to severities: Emergency, Alert, Critical -> critical; Error -> high; Warning ->
medium; Notice, Informational -> low; Debug -> informational.

Entities: the pod (``output_fields`` ``k8s.pod.name``) resolves to its service through
:meth:`~stream.entities.resolve.EntityResolver.service_of_pod`, else to the pod entity
``k8s:pod/NAMESPACE/POD``. An event on no pod (a host process, a cloud plugin) falls back to the
``hostname``: an asset alias when one claims it, else ``host:HOSTNAME``. A server address
(``fd.sip``, ``fd.sip.name``) that an asset alias claims is added too, so a shell that connects to
the payments database concerns the database as well. The subject is the pod (else the host).
"""

from __future__ import annotations

import hashlib
from typing import Any

from stream.entities.resolve import EntityResolver, pod_entity
from stream.jsonsafe import expect_dict, text
from stream.models import DecodeError

PRIORITY_SEVERITY = {
    "emergency": "critical",
    "alert": "critical",
    "critical": "critical",
    "error": "high",
    "warning": "medium",
    "notice": "low",
    "informational": "low",
    "info": "low",
    "debug": "informational",
}
HOST_PREFIX = "host:"
_MISSING = {"", "<NA>", "N/A"}  # what Falco prints for a field the event does not have
_SERVER_ADDRESS_FIELDS = ("fd.sip.name", "fd.sip")


def is_falco(document: dict[str, Any]) -> bool:
    return "rule" in document and "priority" in document and ("output" in document or "output_fields" in document)


def _field(fields: dict[str, Any], key: str) -> str | None:
    value = fields.get(key)
    return value if isinstance(value, str) and value not in _MISSING else None


def _uid(event: dict[str, Any], what: str) -> str:
    uuid = text(event, "uuid", what, required=False)
    if uuid:
        return uuid
    parts = (str(event.get("time")), str(event.get("rule")), str(event.get("hostname")), str(event.get("output")))
    return "falco-" + hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def falco_alert(event: dict[str, Any], resolver: EntityResolver) -> dict[str, Any]:
    """The Alert fields of one Falco event."""
    what = "Falco event"
    rule = text(event, "rule", what)
    priority = text(event, "priority", what)
    severity = PRIORITY_SEVERITY.get(priority.lower())
    if severity is None:
        raise DecodeError(f"{what}: unknown priority {priority[:40]!r}")
    if event.get("time") is None:
        raise DecodeError(f"{what}: missing field 'time'")
    fields = expect_dict(event.get("output_fields", {}), f"{what} output_fields")
    hostname = text(event, "hostname", what, required=False) or _field(fields, "evt.hostname")
    pod = _field(fields, "k8s.pod.name")
    entities: list[str] = []
    if pod is not None:
        entities.append(resolver.service_of_pod(pod) or pod_entity(_field(fields, "k8s.ns.name"), pod))
    elif hostname:
        entities.append(resolver.resolve(hostname) or HOST_PREFIX + hostname)
    else:
        raise DecodeError(f"{what}: names neither a pod (output_fields k8s.pod.name) nor a hostname")
    for key in _SERVER_ADDRESS_FIELDS:
        address = _field(fields, key)
        target = resolver.resolve(address) if address else None
        if target is not None:
            entities.append(target)
    return {
        "uid": _uid(event, what),
        "source": "falco",
        "rule": rule,
        "severity": severity,
        "entities": list(dict.fromkeys(entities)),
        "observed_at": event["time"],
        "subject": pod or hostname,
    }
