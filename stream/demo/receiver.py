"""A local stand-in for PagerDuty's Events API v2, so the demo can show what PagerDuty would receive.

It answers like ``events.pagerduty.com/v2/enqueue``: 202 ``{"status": "success", "dedup_key": ...}``
for a valid event, 400 ``{"status": "invalid event", "errors": [...]}`` otherwise, and keeps every
accepted event (the routing key is checked, never stored). Incidents fold by ``dedup_key`` as
PagerDuty's do: a repeated trigger updates the open incident, a resolve closes it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

PATH = "/v2/enqueue"
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
MAX_BODY = 512 * 1024  # PagerDuty's own limit on an event


def problems(event: Any) -> list[str]:
    """Why PagerDuty would refuse ``event`` (empty when it would accept it)."""
    if not isinstance(event, dict):
        return ["Event object is invalid"]
    errors = []
    if not isinstance(event.get("routing_key"), str) or len(event["routing_key"]) != 32:
        errors.append("'routing_key' must be a 32 character integration key")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append(f"'event_action' must be one of {', '.join(ACTIONS)}")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object")
        else:
            for key in ("summary", "source"):
                if not isinstance(payload.get(key), str) or not payload[key]:
                    errors.append(f"'payload.{key}' is missing or blank")
            if payload.get("severity") not in SEVERITIES:
                errors.append(f"'payload.severity' must be one of {', '.join(SEVERITIES)}")
    elif not isinstance(event.get("dedup_key"), str):
        errors.append(f"'dedup_key' is required to {action}")
    return errors


@dataclass
class Incident:
    dedup_key: str
    summary: str
    severity: str
    triggers: int = 0
    open: bool = True


@dataclass
class PagerDutyReceiver:
    """Runs on 127.0.0.1 on a free port in a background thread; ``url`` is the enqueue endpoint."""

    events: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    last_event_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.path != PATH:
                    self._answer(404, {"status": "not found"})
                    return
                if length > MAX_BODY:
                    self._answer(413, {"status": "invalid event", "errors": ["Request entity too large"]})
                    return
                try:
                    event = orjson.loads(self.rfile.read(length))
                except orjson.JSONDecodeError:
                    event = None
                errors = problems(event)
                if errors:
                    receiver._refuse()
                    self._answer(400, {"status": "invalid event", "message": "Event object is invalid",
                                       "errors": errors})
                    return
                receiver._accept(event)
                self._answer(202, {"status": "success", "message": "Event processed",
                                   "dedup_key": event.get("dedup_key")})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # the demo's screen is not an access log
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="pagerduty-receiver", daemon=True).start()
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{PATH}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _accept(self, event: dict[str, Any]) -> None:
        stored = {key: value for key, value in event.items() if key != "routing_key"}
        with self._lock:
            self.events.append(stored)
            self.last_event_at = time.monotonic()

    def _refuse(self) -> None:
        with self._lock:
            self.refused += 1

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def incidents(self) -> dict[str, Incident]:
        """The incidents PagerDuty would show, by dedup key, in the order they were opened."""
        out: dict[str, Incident] = {}
        for event in self.received():
            key = event.get("dedup_key") or ""
            if event["event_action"] == "trigger":
                payload = event["payload"]
                incident = out.get(key)
                if incident is None or not incident.open:
                    incident = out[key] = Incident(key, payload["summary"], payload["severity"])
                incident.summary, incident.severity = payload["summary"], payload["severity"]
                incident.triggers += 1
            elif event["event_action"] == "resolve" and key in out:
                out[key].open = False
        return out
