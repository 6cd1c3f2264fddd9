"""Real HTTP receivers on 127.0.0.1 that answer as PagerDuty, Opsgenie and a signed-webhook consumer do.

Each is a ``ThreadingHTTPServer`` on a free port. By default a receiver processes a request the way
the real service does (validates it, de-duplicates on the dedup key, answers 202 with the real
body); a script of failures can be queued first, for every request or only for those a predicate
picks: ``400``/``401``/``422`` with the service's error body, ``429`` with ``Retry-After``, ``500``,
``drop`` (close without answering), ``accept-then-drop`` (process, then close without answering:
the sender cannot know it was delivered) and ``hang`` (hold the request until :meth:`release`).

Also here: :func:`escalation_event`, a hand-built escalation event following
topics/schemas/escalation.schema.json field for field, which the tests feed to the sinks (and
:func:`suppressed_event`, one a policy muted), and :func:`send`, which sends a request a sink built.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from paths import SCHEMAS

from stream.correlate.lifecycle import escalation_uid
from stream.deliver.http import HttpRequest
from stream.deliver.webhook import DEDUP_KEY_HEADER, SIGNATURE_HEADER, verify_signature

HANG_LIMIT_S = 60.0
# The credentials the tests' sinks send and their receivers expect.
ROUTING_KEY = "R0UT1NGK3Y0123456789abcdefabcdef"
GENIE_KEY = "eb243592-faa2-4ba2-a551-1afdf565c889"
HMAC_SECRET = "whsec-3a9c1f0e7d55"

# (status, JSON body or None, extra headers) or one of the connection-level actions.
Answer = tuple[int, Any, dict[str, str]]
DROP = "drop"
ACCEPT_THEN_DROP = "accept-then-drop"
HANG = "hang"
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
RESPONDER_TYPES = ("team", "user", "escalation", "schedule")


@dataclass
class Received:
    """One request as the receiver saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    answer: str = ""

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class Alert:
    """An alert as the service keeps it: opened once per dedup key, then updated or closed."""

    key: str
    status: str = "open"
    events: list[dict] = field(default_factory=list)
    priority: str | None = None


class Receiver:
    """A scripted, recording HTTP server. Subclasses implement :meth:`process` like the real service."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.alerts: dict[str, Alert] = {}
        self.pages: list[str] = []  # dedup keys, once each time an alert was newly opened
        self._scripts: list[tuple[Callable[[Received], bool], deque]] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.hanging = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                receiver._serve(self)

            do_PUT = do_POST  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def script(self, *answers: Answer | str, when: Callable[[Received], bool] | None = None) -> None:
        """Queue answers for the next requests (that ``when`` picks); afterwards the receiver behaves normally."""
        with self._lock:
            self._scripts.append((when or (lambda _request: True), deque(answers)))

    def release(self) -> None:
        """Let hanging requests go (their connections are then dropped)."""
        self._released.set()

    def opened(self, key: str) -> int:
        """How many times an alert was opened for ``key`` (what an on-call engineer would be paged)."""
        with self._lock:
            return self.pages.count(key)

    def status(self, key: str) -> str | None:
        with self._lock:
            alert = self.alerts.get(key)
            return alert.status if alert else None

    def process(self, request: Received) -> Answer:
        raise NotImplementedError

    # --- shared bookkeeping for subclasses ---

    def trigger(self, key: str, event: dict) -> None:
        """Open an alert, or add to the open one: a repeated trigger never pages again."""
        alert = self.alerts.get(key)
        if alert is None or alert.status != "open":
            alert = self.alerts[key] = Alert(key)
            self.pages.append(key)
        alert.events.append(event)

    def close(self, key: str, event: dict) -> bool:
        alert = self.alerts.get(key)
        if alert is None or alert.status != "open":
            return False
        alert.status = "closed"
        alert.events.append(event)
        return True

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        parts = urlsplit(handler.path)
        request = Received(handler.command, unquote(parts.path), parse_qs(parts.query), dict(handler.headers.items()),
                           handler.rfile.read(length))
        with self._lock:
            self.requests.append(request)
            answer = self._scripted(request)
        if answer == HANG:
            request.answer = HANG
            self.hanging.set()
            self._released.wait(HANG_LIMIT_S)
            answer = DROP
        if answer in (None, ACCEPT_THEN_DROP):
            with self._lock:
                processed = self.process(request)
            answer = DROP if answer == ACCEPT_THEN_DROP else processed
        if answer == DROP:
            request.answer = request.answer or DROP
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        status, body, headers = answer
        request.answer = request.answer or str(status)
        payload = b"" if body is None else json.dumps(body).encode()
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json", "Content-Length": str(len(payload)), **headers}.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _scripted(self, request: Received) -> Answer | str | None:
        for when, answers in self._scripts:
            if answers and when(request):
                return answers.popleft()
        return None


class PagerDutyReceiver(Receiver):
    """Events API v2 at ``/v2/enqueue``: 202 ``{"status":"success",...}``, 400 ``{"status":"invalid event",...}``."""

    def __init__(self, routing_key: str):
        super().__init__()
        self.routing_key = routing_key
        self.actions: list[tuple[str, str]] = []  # (event_action, dedup_key) of each event accepted, in order

    @property
    def enqueue_url(self) -> str:
        return self.url + "/v2/enqueue"

    def process(self, request: Received) -> Answer:
        event = request.json
        errors = self._errors(request.path, event)
        if errors:
            return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}, {}
        key = event["dedup_key"]
        if event["event_action"] == "trigger":
            self.trigger(key, event)
        else:
            self.close(key, event)  # PagerDuty drops a resolve for an alert that is not open
        self.actions.append((event["event_action"], key))
        return 202, {"status": "success", "message": "Event processed", "dedup_key": key}, {}

    def _errors(self, path: str, event: Any) -> list[str]:
        if path != "/v2/enqueue":
            return [f"Unknown path {path}"]
        if not isinstance(event, dict):
            return ["Body is not a JSON object"]
        errors = []
        if event.get("routing_key") != self.routing_key:
            errors.append("Invalid routing key")
        if event.get("event_action") not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is invalid "
                          "(must be one of the following: 'trigger', 'acknowledge' or 'resolve')")
        if not event.get("dedup_key") or len(event["dedup_key"]) > 255:
            errors.append("'dedup_key' is missing or longer than 255 characters")
        if event.get("event_action") == "trigger" or "payload" in event:  # a payload sent is checked on any action
            payload = event.get("payload") or {}
            for name in ("summary", "source", "severity"):
                if not payload.get(name):
                    errors.append(f"'payload.{name}' is missing or blank")
            if payload.get("severity") not in ("critical", "error", "warning", "info"):
                errors.append("'payload.severity' is invalid")
            if len(payload.get("summary") or "") > 1024:
                errors.append("'payload.summary' is longer than 1024 characters")
        return errors


class OpsgenieReceiver(Receiver):
    """Alert API: ``POST /v2/alerts`` and ``POST /v2/alerts/{alias}/close?identifierType=alias``, ``GenieKey`` auth."""

    def __init__(self, api_key: str):
        super().__init__()
        self.api_key = api_key

    def process(self, request: Received) -> Answer:
        if request.headers.get("Authorization") != f"GenieKey {self.api_key}":
            return 401, {"message": "Could not authenticate", "took": 0.0, "requestId": str(uuid.uuid4())}, {}
        body = request.json if isinstance(request.json, dict) else {}
        action = request.path.rsplit("/", 1)[-1]
        if (request.method, request.path) == ("POST", "/v2/alerts"):
            errors = self._create_errors(body)
            if errors:
                return 422, {"message": "Request body is not processable. Please check the errors.",
                             "errors": errors, "took": 0.0, "requestId": str(uuid.uuid4())}, {}
            key = body.get("alias") or str(uuid.uuid4())
            self.trigger(key, body)
            if self.alerts[key].priority is None:  # a de-duplicated create changes nothing but the count
                self.alerts[key].priority = body.get("priority", "P3")
        elif (request.path.startswith("/v2/alerts/")
              and (request.method, action) in (("POST", "close"), ("PUT", "priority"))):
            if request.query.get("identifierType") != ["alias"]:
                return 422, {"message": "identifierType must be alias for this client", "took": 0.0}, {}
            key = request.path[len("/v2/alerts/"):-len(action) - 1]
            if action == "close":
                self.close(key, body)
            elif body.get("priority") not in PRIORITIES:
                return 422, {"message": "Priority should be one of [P1, P2, P3, P4, P5]", "took": 0.0}, {}
            elif key in self.alerts and self.alerts[key].status == "open":  # else "Alert does not exist", later
                self.alerts[key].priority = body["priority"]
        else:
            return 404, {"message": "Not found", "took": 0.0}, {}
        return 202, {"result": "Request will be processed", "took": 0.1, "requestId": str(uuid.uuid4())}, {}

    def priority(self, key: str) -> str | None:
        with self._lock:
            alert = self.alerts.get(key)
            return alert.priority if alert else None

    @staticmethod
    def _create_errors(body: dict) -> dict[str, str]:
        """The Alert API's documented limits for a create, checked as Opsgenie does (422 naming the field)."""
        errors = {}
        if not body.get("message") or len(body["message"]) > 130:
            errors["message"] = "Message can not be empty and must be at most 130 characters."
        for name, limit in (("alias", 512), ("description", 15000), ("entity", 512), ("source", 100), ("note", 25000)):
            if len(body.get(name) or "") > limit:
                errors[name] = f"{name} must be at most {limit} characters."
        tags = body.get("tags") or []
        if len(tags) > 20 or any(len(tag) > 50 for tag in tags):
            errors["tags"] = "At most 20 tags of at most 50 characters each."
        details = body.get("details") or {}
        if sum(len(key) + len(str(value)) for key, value in details.items()) > 8000:
            errors["details"] = "Details must be at most 8000 characters in total."
        if body.get("priority", "P3") not in PRIORITIES:
            errors["priority"] = "Priority should be one of [P1, P2, P3, P4, P5]"
        responders = body.get("responders") or []
        if not all(isinstance(responder, dict) and responder.get("type") in RESPONDER_TYPES
                   and (responder.get("id") or responder.get("name") or responder.get("username"))
                   for responder in responders):
            errors["responders"] = "Responders must name a team, user, escalation or schedule by id or name."
        return errors

    def responders(self, key: str) -> list[dict]:
        """The responders the alert was opened with (a de-duplicated create changes none)."""
        with self._lock:
            alert = self.alerts.get(key)
            return alert.events[0].get("responders", []) if alert else []


class WebhookReceiver(Receiver):
    """A receiver of the generic webhook that verifies the signature and de-duplicates on key and version."""

    def __init__(self, secret: str, tolerance_s: float = 300.0):
        super().__init__()
        self.secret = secret
        self.tolerance_s = tolerance_s

    def process(self, request: Received) -> Answer:
        if not verify_signature(request.headers.get(SIGNATURE_HEADER), request.body, self.secret, self.tolerance_s):
            return 401, {"message": "bad signature"}, {}
        event = request.json
        key = request.headers.get(DEDUP_KEY_HEADER)
        if not isinstance(event, dict) or key != event.get("escalation_uid"):
            return 400, {"message": "dedup key header does not match the body"}, {}
        alert = self.alerts.get(key)
        if alert is not None and any(seen["version"] == event["version"] for seen in alert.events):
            return 409, {"message": "already received"}, {}
        if event["state"] in ("resolved", "suppressed"):  # this receiver treats a mute as the end of the alert
            self.close(key, event)
        else:
            self.trigger(key, event)
        return 200, {"message": "ok"}, {}


def escalation_event(finding_uid: str = "prowler-aws-s3_bucket_public_access-123456789012-eu-west-1-payments-exports",
                     *, state: str = "escalated", version: int = 1, priority: str = "P2", score: float = 68.0,
                     owner: str | None = "payments", environment: str | None = "prod",
                     trace_ids: list[str] | None = None, alert_uids: list[str] | None = None,
                     resource: str = "arn:aws:s3:::payments-exports", **policy: Any) -> dict[str, Any]:
    """An escalation event as the correlation core writes it (topics/schemas/escalation.schema.json).

    ``policy`` adds what a policy decided, as the event carries it: ``suppressed_by`` (see :func:`mute`),
    ``suppression_ended``, ``policy_version``, ``routing``.
    """
    if trace_ids is None:
        trace_ids = ["4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"]
    alert_uids = ["f8a7c6d2-5b1e-4c3a-9d2f-1e0b7a6c5d4e"] if alert_uids is None else alert_uids
    return {
        "finding_uid": finding_uid,
        "escalation_uid": escalation_uid(finding_uid),
        "state": state,
        "version": version,
        "priority": priority,
        "score": score,
        "resource": resource,
        "finding": {
            "source": "prowler",
            "check": "s3_bucket_public_access",
            "title": "Ensure there are no S3 buckets open to Everyone or Any AWS user.",
            "severity": "high",
            "resources": [resource],
            "account": "123456789012",
            "region": "eu-west-1",
        },
        "factors": {
            "severity": "high", "exercised": True, "span_count": 412, "internet_exposed": True,
            "exposure_path": ["service:edge-gateway", "service:payments-api"], "under_attack": bool(alert_uids),
            "alerts": len(alert_uids), "data_classification": "pci", "criticality": "high", "held": False,
            "contributions": {"severity": 22.0, "exercised": 15.0, "internet": 15.0, "data": 10.0, "criticality": 6.0},
        },
        "reasons": [
            "payments-api read this bucket 412 times in the last 15 minutes",
            "payments-api takes traffic from the internet through edge-gateway",
            "the bucket holds PCI data",
        ],
        "evidence": {
            "trace_ids": trace_ids,
            "alert_uids": alert_uids,
            "first_seen": "2025-03-14T09:00:02.125Z",
            "last_seen": "2025-03-14T09:14:57.870Z",
        },
        "asset": {"owner": owner, "environment": environment, "service": "payments-api"},
        "event_time": "2025-03-14T09:14:57.870Z",
        "emitted_at": "2025-03-14T09:15:01.002Z",
        **policy,
    }


def with_compliance(event: dict[str, Any], compliance: dict[str, list[str]],
                    remediation: dict[str, Any] | None = None) -> dict[str, Any]:
    """``event`` with its finding failing ``compliance`` and, when given, the source's ``remediation``."""
    event["finding"]["compliance"] = compliance
    if remediation is not None:
        event["finding"]["remediation"] = remediation
    return event
POLICY_VERSION = "3f0c9a51d2e84b7c6a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b"


def mute(rule_id: str = "accept-exports-bucket", *, owner: str = "payments-security",
         reason: str = "public by design: signed downloads for merchants", ticket: str | None = "RISK-142",
         expires: str | None = "2026-06-30") -> dict[str, Any]:
    """The ``suppressed_by`` of a suppressed event: a mute rule from a policy file."""
    return {"rule_id": rule_id, "source": "policies/payments.yaml", "policy_version": POLICY_VERSION,
            "owner": owner, "reason": reason, "ticket": ticket, "expires": expires}


def suppressed_event(finding_uid: str = "prowler-aws-s3_bucket_public_access-123456789012-eu-west-1-payments-exports",
                     **changes: Any) -> dict[str, Any]:
    """A suppressed escalation event (version 2: the finding was escalated first), judged by :data:`POLICY_VERSION`."""
    fields = {"state": "suppressed", "version": 2, "suppressed_by": mute(), "policy_version": POLICY_VERSION,
              **changes}
    return escalation_event(finding_uid, **fields)


def send(request: HttpRequest) -> int:
    """Send a request a sink built to a receiver, as any HTTP client would; the status it answered."""
    method, url, headers, body = request
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers, method=method), timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def load_schema(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())
