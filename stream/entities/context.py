"""The shared context every worker holds in full: assets, learned pods, the call graph, recent alerts.

Per-entity state is partitioned across workers, but a few facts cross entities: which service calls
which entity (so internet exposure propagates along the observed call path), which services take
internet traffic, which pod runs which service, and the alerts on services that exercise a
resource. They are small next to the trace stream, so they are replicated: ingest publishes deltas
to the compacted ``hotpath.context`` topic and every worker reads all of it (broadcast state).

Each fact is one key/value, applied idempotently (``last_seen`` only moves forward), so reading the
topic twice, or out of order, converges to the same context.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from stream.entities.resolve import EntityResolver, pod_name
from stream.models import Alert, Asset

MAX_ALERTS_PER_ENTITY = 20
MAX_CALLERS_PER_ENTITY = 64


@dataclass(frozen=True, slots=True)
class AlertFact:
    uid: str
    source: str
    rule: str
    severity: str
    observed_at: float
    subject: str

    @classmethod
    def of(cls, alert: Alert, entity: str) -> AlertFact:
        return cls(alert.uid, alert.source, alert.rule, alert.severity, alert.event_time,
                   alert.subject or entity.removeprefix("service:"))


class Context:
    def __init__(self, max_path_depth: int = 5) -> None:
        self.resolver = EntityResolver()
        self.max_path_depth = max_path_depth
        self._callers: dict[str, dict[str, float]] = {}
        self._internet: dict[str, float] = {}
        self._alerts: dict[str, dict[str, AlertFact]] = {}
        self._pod_alert_entities: dict[str, set[str]] = {}  # pod name -> pod entities with alerts

    # -- facts, as (key, value) pairs: what ingest publishes and every worker applies ----------

    @staticmethod
    def edge_fact(caller: str, callee: str, last_seen: float) -> tuple[str, dict[str, Any]]:
        return f"edge|{caller}|{callee}", {"last_seen": last_seen}

    @staticmethod
    def internet_fact(entity: str, last_seen: float) -> tuple[str, dict[str, Any]]:
        return f"internet|{entity}", {"last_seen": last_seen}

    @staticmethod
    def pod_fact(pod: str, service: str, last_seen: float) -> tuple[str, dict[str, Any]]:
        return f"pod|{pod}", {"service": service, "last_seen": last_seen}

    @staticmethod
    def alert_fact(entity: str, alert: Alert) -> tuple[str, dict[str, Any]]:
        fact = AlertFact.of(alert, entity)
        return f"alert|{entity}|{alert.uid}", {
            "source": fact.source, "rule": fact.rule, "severity": fact.severity,
            "observed_at": fact.observed_at, "subject": fact.subject,
        }

    def apply(self, key: str, value: dict[str, Any] | None) -> None:
        """Apply one fact; ``None`` (a tombstone) is ignored: facts age out by time instead."""
        if value is None:
            return
        kind, _, rest = key.partition("|")
        if kind == "edge":
            caller, _, callee = rest.partition("|")
            self.add_edge(caller, callee, value["last_seen"])
        elif kind == "internet":
            self.add_internet(rest, value["last_seen"])
        elif kind == "pod":
            self.resolver.learn_pod(rest, value["service"], value.get("last_seen", float("-inf")))
        elif kind == "alert":
            entity, _, uid = rest.rpartition("|")
            self.add_alert(entity, AlertFact(uid, value["source"], value["rule"], value["severity"],
                                             value["observed_at"], value["subject"]))
        elif kind == "asset":
            self.resolver.add_asset(Asset.model_validate(value))

    def add_asset(self, asset: Asset) -> None:
        self.resolver.add_asset(asset)

    def add_edge(self, caller: str, callee: str, last_seen: float) -> None:
        callers = self._callers.setdefault(callee, {})
        if last_seen > callers.get(caller, float("-inf")):
            callers[caller] = last_seen
            if len(callers) > MAX_CALLERS_PER_ENTITY:
                del callers[min(callers, key=callers.__getitem__)]

    def add_internet(self, entity: str, last_seen: float) -> None:
        if last_seen > self._internet.get(entity, float("-inf")):
            self._internet[entity] = last_seen

    def add_alert(self, entity: str, fact: AlertFact) -> None:
        pod = pod_name(entity)
        if pod is not None:
            self._pod_alert_entities.setdefault(pod, set()).add(entity)
        alerts = self._alerts.setdefault(entity, {})
        alerts[fact.uid] = fact
        if len(alerts) > MAX_ALERTS_PER_ENTITY:
            del alerts[min(alerts, key=lambda uid: alerts[uid].observed_at)]

    # -- questions the correlator asks -------------------------------------------------------

    def internet_since(self, entity: str, since: float) -> bool:
        return self._internet.get(entity, float("-inf")) >= since

    def exposure_path(self, entity: str, since: float, callers: dict[str, float] | None = None) -> tuple[str, ...]:
        """Shortest observed call path from an internet-facing service to ``entity``, or ().

        Breadth-first backwards over caller edges seen since ``since``; the path starts at the
        internet-facing service and ends at ``entity``. ``callers`` (caller -> last seen) adds the
        entity's own callers to the edges into it the context holds: a resource off the shared
        call graph knows its callers from its own state.
        """
        if self.internet_since(entity, since):
            return (entity,)
        first_hop = dict(self._callers.get(entity, {}))
        for caller, seen in (callers or {}).items():
            first_hop[caller] = max(seen, first_hop.get(caller, seen))
        parents: dict[str, str] = {entity: ""}
        frontier = deque([(entity, 0)])
        while frontier:
            node, depth = frontier.popleft()
            if depth >= self.max_path_depth:
                continue
            for caller, seen in sorted((first_hop if node == entity else self._callers.get(node, {})).items()):
                if seen < since or caller in parents:
                    continue
                parents[caller] = node
                if self.internet_since(caller, since):
                    path = [caller]
                    while path[-1] != entity:
                        path.append(parents[path[-1]])
                    return tuple(path)
                frontier.append((caller, depth + 1))
        return ()

    def alerts_on(self, entity: str, since: float) -> list[AlertFact]:
        """Alerts on ``entity`` since ``since``, including alerts on the pods that run it.

        An alert on a pod is resolved to its service when ingested if traces have already shown
        the pod; otherwise it is kept under the pod and bound here, once traces name the pod, so
        the order in which the alert and trace streams arrive does not matter.
        """
        facts = list(self._alerts.get(entity, {}).values())
        for pod in self.resolver.pods_of(entity):
            for pod_entity in self._pod_alert_entities.get(pod, ()):
                facts.extend(self._alerts.get(pod_entity, {}).values())
        return [a for a in facts if a.observed_at >= since]

    def prune(self, before: float) -> None:
        """Forget edges, internet sightings, alerts and learned pods last seen before ``before``."""
        self.resolver.prune_pods(before)
        for callee in list(self._callers):
            callers = self._callers[callee]
            for caller in [c for c, seen in callers.items() if seen < before]:
                del callers[caller]
            if not callers:
                del self._callers[callee]
        for entity in [e for e, seen in self._internet.items() if seen < before]:
            del self._internet[entity]
        for entity in list(self._alerts):
            alerts = self._alerts[entity]
            for uid in [u for u, a in alerts.items() if a.observed_at < before]:
                del alerts[uid]
            if not alerts:
                del self._alerts[entity]
                pod = pod_name(entity)
                if pod is not None:
                    self._pod_alert_entities.get(pod, set()).discard(entity)

    def size(self) -> dict[str, int]:
        return {
            "assets": len(self.resolver.assets),
            "edges": sum(len(c) for c in self._callers.values()),
            "internet_entries": len(self._internet),
            "alerts": sum(len(a) for a in self._alerts.values()),
        }
