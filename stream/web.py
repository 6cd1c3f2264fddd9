"""The worker's HTTP views: ``/health``, ``/metrics`` (Prometheus text) and ``/escalations``.

Served by Faust's own web server (``HOTPATH_WEB_HOST``/``HOTPATH_WEB_PORT``). ``/health`` answers 200
only when the worker is ready: its partitions are assigned and their tables recovered, and the
shared context has been read up to where it stood at start-up; 503 with the reason otherwise. It
also lists the entity partitions the worker owns, to see how a group has spread them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stream.lifecycle import PRIORITY_RANK

if TYPE_CHECKING:
    from stream.app import Hotpath

BOARD_SIZE = 1000


class EscalationBoard:
    """The current escalation of each finding that is escalated now (resolved ones leave).

    Past ``limit`` findings the least urgent leaves, so the board keeps the top ones in bounded memory.
    """

    def __init__(self, limit: int = BOARD_SIZE) -> None:
        self.limit = limit
        self.current: dict[str, dict[str, Any]] = {}

    def record(self, event: dict[str, Any]) -> None:
        uid = event["finding_uid"]
        if event["state"] == "resolved":
            self.current.pop(uid, None)
            return
        self.current[uid] = event
        if len(self.current) > self.limit:
            del self.current[min(self.current, key=lambda u: _rank(self.current[u]))]

    def top(self, n: int) -> list[dict[str, Any]]:
        return sorted(self.current.values(), key=_rank, reverse=True)[:n]


def _rank(event: dict[str, Any]) -> tuple[int, float]:
    return (-PRIORITY_RANK[event["priority"]], event["score"])


def readiness(hotpath: Hotpath) -> tuple[bool, str]:
    app = hotpath.app
    if not hotpath.feed.caught_up.is_set():
        return False, "reading the shared context"
    if app.rebalancing or getattr(app, "in_recovery", False):
        return False, "rebalancing or recovering tables"
    if not app.tables.recovery.completed.is_set():
        return False, "table recovery not complete"
    if not app.assignor.assigned_actives():
        return False, "no partitions assigned yet"
    return True, "ready"


def _lag_lines(hotpath: Hotpath) -> list[str]:
    consumer = hotpath.app.consumer
    lines = ["# HELP hotpath_consumer_lag records between the consumer's position and the end",
             "# TYPE hotpath_consumer_lag gauge"]
    for tp in sorted(hotpath.app.assignor.assigned_actives()):
        high = consumer.highwater(tp)
        position = consumer._committed_offset.get(tp) if hasattr(consumer, "_committed_offset") else None
        if high is not None and position is not None:
            lines.append(f'hotpath_consumer_lag{{topic="{tp.topic}",partition="{tp.partition}"}} '
                         f"{max(0, high - position - 1)}")
    return lines


def register_views(hotpath: Hotpath) -> None:
    app = hotpath.app

    @app.page("/health")
    async def health(view, request):
        ready, why = readiness(hotpath)
        owned = sorted(tp.partition for tp in app.assignor.assigned_actives()
                       if tp.topic == hotpath.settings.topic_entity_events)
        return view.json({"ready": ready, "status": why, "context": hotpath.context.size(), "partitions": owned},
                         status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(view, request):
        return view.text(hotpath.metrics.render(_lag_lines(hotpath)),
                         content_type="text/plain; version=0.0.4")

    @app.page("/escalations")
    async def escalations(view, request):
        limit = int(request.query.get("limit", "50"))
        return view.json({"escalations": hotpath.board.top(limit)})
