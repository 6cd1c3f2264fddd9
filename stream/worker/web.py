"""The worker's HTTP views: probes, ``/metrics`` (Prometheus text) and ``/escalations``.

Served by Faust's own web server on ``HOTPATH_WEB_PORT``, bound to loopback unless a token is set
(:func:`stream.settings.web_bind_host`); Faust's built-in views (tables, router, graph, stats) are off.

- ``/health/live``: 200 while the worker's event loop answers; a worker waiting for a rebalance or for
  the context is alive, and must not be restarted for it.
- ``/health/ready`` (and ``/health``, its older name): 200 only when the worker is ready: its
  partitions are assigned and their tables recovered, and the shared context and the published policy
  have been read up to where they stood at start-up; 503 with the reason otherwise. It also lists the
  entity partitions the worker owns, to see how a group has spread them.
- ``/metrics``: the catalog of stream.metrics; consumer lag is read when scraped.
- ``/escalations?limit=N``: the current top escalations, a target list (resource ARNs, trace ids):
  with ``HOTPATH_WEB_TOKEN`` set it needs ``Authorization: Bearer <token>``, from loopback too.
- ``/compliance``: for each framework, the failing controls live traffic exercises now, with their top
  escalations (:mod:`stream.correlate.compliance`); the same token rule.

The probes and ``/metrics`` stay open, for the kubelet and Prometheus.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stream.correlate.compliance import compliance_view
from stream.correlate.lifecycle import PRIORITY_RANK
from stream.metrics import CONTENT_TYPE
from stream.settings import Settings

if TYPE_CHECKING:
    from stream.worker.app import Hotpath

log = logging.getLogger("hotpath.web")
BOARD_SIZE = 1000
DEFAULT_LIMIT = 50
LAG_READ_TIMEOUT_S = 2.0  # a scrape answers without lag rather than wait on a broker that does not


class EscalationBoard:
    """The current escalation of each finding that is escalated now (resolved ones leave).

    Past ``limit`` findings the least urgent leaves, so the board keeps the top ones in bounded memory.
    """

    def __init__(self, limit: int = BOARD_SIZE) -> None:
        self.limit = limit
        self.current: dict[str, dict[str, Any]] = {}

    def record(self, event: dict[str, Any]) -> None:
        """Keep ``event`` as its finding's current escalation; one the board could not rank later is refused
        (KeyError or ValueError) before anything changes, so no stored event can fail ``top``."""
        uid = event["finding_uid"]
        if event["state"] == "resolved":
            self.current.pop(uid, None)
            return
        _rank(event)
        self.current[uid] = event
        if len(self.current) > self.limit:
            del self.current[min(self.current, key=lambda u: _rank(self.current[u]))]

    def suppression_of(self, finding_uid: str) -> dict[str, Any] | None:
        """The ``suppressed_by`` of the finding's current escalation, when it is suppressed and on the board."""
        return self.current.get(finding_uid, {}).get("suppressed_by")

    def top(self, n: int) -> list[dict[str, Any]]:
        return sorted(self.current.values(), key=_rank, reverse=True)[:n]


def _rank(event: dict[str, Any]) -> tuple[int, float]:
    return (-PRIORITY_RANK[event["priority"]], float(event["score"]))


def readiness(hotpath: Hotpath) -> tuple[bool, str]:
    app = hotpath.app
    feeds = ((hotpath.feed, "the shared context"), (hotpath.policy_feed, "the published policy"))
    for feed, what in feeds:  # a feed that stopped is said first: it will not catch up by waiting
        if feed.failure is not None:
            return False, f"{what} is no longer read: {feed.failure}"
    for feed, what in feeds:
        if not feed.caught_up.is_set():
            return False, f"reading {what}"
    if app.rebalancing or getattr(app, "in_recovery", False):
        return False, "rebalancing or recovering tables"
    if not app.tables.recovery.completed.is_set():
        return False, "table recovery not complete"
    if not app.assignor.assigned_actives():
        return False, "no partitions assigned yet"
    return True, "ready"


def authorized(settings: Settings, authorization: str | None) -> bool:
    """Whether a request may read the data views: with a token set, only with ``Bearer <token>``.

    Compared in constant time, so the answer's timing tells nothing about the token.
    """
    if settings.web_token is None:
        return True
    expected = f"Bearer {settings.web_token.get_secret_value()}".encode()
    return hmac.compare_digest((authorization or "").encode("utf-8", "surrogateescape"), expected)


def escalation_limit(query: Mapping[str, str]) -> int | None:
    """The ``limit`` parameter of /escalations (1 to BOARD_SIZE, DEFAULT_LIMIT when absent); None when bad."""
    raw = query.get("limit", str(DEFAULT_LIMIT))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(BOARD_SIZE))):
        return None
    limit = int(raw)
    return limit if 1 <= limit <= BOARD_SIZE else None


async def consumer_lag(app: Any) -> dict[tuple[str, int], int]:
    """Records per partition the agents read not yet processed and committed, through Faust's public API.

    The log end offset is asked of the broker (``Consumer.highwaters``); the processed side is this
    worker's last commit since the rebalance (``Monitor.tp_committed_offsets``), or, where it has
    committed nothing since, its fetch position (``Consumer.position``), which then is where the
    group's last commit left it. Changelogs are left out: an active table writes its changelog and
    reads it only to recover.
    """
    changelogs = app.tables.changelog_topics
    actives = sorted(tp for tp in app.assignor.assigned_actives() if tp.topic not in changelogs)
    if not actives:
        return {}
    ends = await app.consumer.highwaters(*actives)
    committed = app.monitor.tp_committed_offsets
    lags = {}
    for tp in actives:
        done = committed.get(tp)
        if done is None:
            done = await app.consumer.position(tp)
        end = ends.get(tp)
        if end is not None and done is not None:
            lags[(tp.topic, tp.partition)] = max(0, end - done)
    return lags


def register_views(hotpath: Hotpath) -> None:
    app = hotpath.app
    metrics = hotpath.metrics
    metrics.ready.set_function(lambda: float(readiness(hotpath)[0]))
    metrics.context_entries.set_function(lambda: sum(hotpath.context.size().values()))

    @app.page("/health/live")
    async def liveness_view(view, request):
        return view.json({"alive": True})

    async def readiness_view(view, request):
        ready, why = readiness(hotpath)
        owned = sorted(tp.partition for tp in app.assignor.assigned_actives()
                       if tp.topic == hotpath.settings.topic_entity_events)
        return view.json({"ready": ready, "status": why, "context": hotpath.context.size(), "partitions": owned},
                         status=200 if ready else 503)

    app.page("/health/ready", name="ready")(readiness_view)
    app.page("/health", name="health")(readiness_view)  # the older name of readiness

    @app.page("/metrics")
    async def metrics_view(view, request):
        try:
            lags = await asyncio.wait_for(consumer_lag(app), LAG_READ_TIMEOUT_S)
        except Exception as exc:  # a rebalance or an unreachable broker: no lag series this time
            log.warning("consumer lag not read: %s: %s", type(exc).__name__, exc)
            lags = {}
        metrics.set_consumer_lag(lags)
        return view.bytes(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    def refused(view, request):
        """The 401 answer to a request for a data view without the token; None when it may read it."""
        if authorized(hotpath.settings, request.headers.get("Authorization")):
            return None
        return view.json({"error": "this view needs Authorization: Bearer <HOTPATH_WEB_TOKEN>"}, status=401,
                         headers={"WWW-Authenticate": 'Bearer realm="hotpath"'})

    @app.page("/escalations")
    async def escalations_view(view, request):
        if (answer := refused(view, request)) is not None:
            return answer
        limit = escalation_limit(request.query)
        if limit is None:
            return view.json({"error": f"limit must be an integer from 1 to {BOARD_SIZE}"}, status=400)
        return view.json({"escalations": hotpath.board.top(limit)})

    @app.page("/compliance")
    async def compliance_page(view, request):
        if (answer := refused(view, request)) is not None:
            return answer
        return view.json({"compliance": compliance_view(hotpath.board.current.values())})
