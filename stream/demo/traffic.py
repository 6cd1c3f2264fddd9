"""The demo's traffic: real OpenTelemetry SDK spans, batched as the Collector's Kafka exporter sends them.

The story the spans tell: internet clients (some through the ALB, seen in ``X-Forwarded-For``) call
``payments-api``, which calls ``fraud-scoring`` (DynamoDB) and ``ledger`` (the RDS ledger database
through its endpoint alias, the statements bucket, the ``ledger-events`` queue); back-office staff
on private addresses use ``kyc`` (the KYC documents bucket, virtual-hosted S3 addresses); the nightly
``reporting`` job reads the ledger database and writes the exports bucket; internet visitors load
the marketing ``website``, which renders its pages from the public ``finpay-www`` bucket. Scale adds
internal services, each reading its own table and bucket.

Spans reach the Collector when their trace ends, so traces are emitted in end-time order; a batch
never splits a trace (the tail of a request is in the same Kafka record as its head), holds 256 to
about 1000 spans, and its event time is its last span's end. With ``partition_traces_by_id`` each
trace is its own record, keyed by its hex trace id, as the exporter does with that option.

Each minute of traffic depends only on the seed, the scale and the minute (its own random stream and
trace id generator), so minutes can be built in parallel processes and still give the same bytes.
"""

from __future__ import annotations

import heapq
import ipaddress
import multiprocessing
import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat

from opentelemetry.trace import SpanKind

from stream.demo.estate import ACCOUNT, CLUSTER, REGION, Estate, Service, node_name
from stream.demo.tracegen import (
    Encoding,
    TraceBuilder,
    Workload,
    aws_call,
    database,
    encode_batch,
    http_client,
)

HTTPX = "opentelemetry.instrumentation.httpx"
BOTOCORE = "opentelemetry.instrumentation.botocore"
PSYCOPG = "opentelemetry.instrumentation.psycopg"
# Requests per minute per unit of scale, by kind.
RATES = {"payment": 45, "statement": 25, "balance": 35, "probe": 12, "kyc_verification": 8, "kyc_document": 6,
         "page_view": 30}
WEBSITE_PAGES = ("/", "/pricing", "/about", "/careers", "/blog/{slug}")
INTERNAL_RATE = 20
REPORT_QUERIES = 20
REPORT_FILES = 30
BATCH_MIN_SPANS = 256
BATCH_TARGET_MAX = 704  # plus at most one trace and a short final remainder: stays near 1000
ALB_ADDRESSES = ("10.0.1.23", "10.0.2.41", "10.0.3.17")
ERROR_RATE = 0.02


@dataclass(frozen=True)
class TrafficSpec:
    """Everything the traffic depends on; picklable, so worker processes can build minutes of it."""

    estate: Estate
    seed: int
    scale: int
    start: float
    minutes: int
    encoding: Encoding
    partition_traces_by_id: bool


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One Kafka record of the traces topic: key, OTLP value, event time, span count."""

    key: bytes | None
    value: bytes
    event_time: float
    spans: int


def public_addresses(rng: random.Random, count: int) -> list[str]:
    """Internet client addresses (globally routable, so hotpath counts them as internet traffic)."""
    out: list[str] = []
    while len(out) < count:
        candidate = ipaddress.IPv4Address(rng.getrandbits(32))
        if candidate.is_global and not candidate.is_multicast:
            out.append(str(candidate))
    return out


def _workload(service: Service, node: str, **extra) -> Workload:
    # service.instance.id is set, not left to the SDK, which draws a random one per process.
    instance = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{service.pod}.{service.namespace}.{CLUSTER}"))
    return Workload(service.name, pod=service.pod, namespace=service.namespace, region=REGION, account=ACCOUNT,
                    extra={"k8s.cluster.name": CLUSTER, "k8s.node.name": node, "service.version": "1.42.0",
                           "service.instance.id": instance, "deployment.environment.name": "prod", **extra})


def _random(spec: TrafficSpec, purpose: str) -> random.Random:
    return random.Random(f"hotpath-demo:{spec.seed}:{spec.scale}:{purpose}")


class Traffic:
    """Builds one minute of the scenario's requests, one trace at a time, with opentelemetry-sdk."""

    def __init__(self, spec: TrafficSpec, minute: int):
        self.spec = spec
        self.minute = minute
        self.estate = spec.estate
        self.scale = spec.scale
        self.svc = spec.estate.services
        self.res = spec.estate.resources
        # The same clients and nodes in every minute; everything else is the minute's own.
        self.clients = public_addresses(_random(spec, "clients"), 150 * spec.scale)
        nodes = _random(spec, "nodes")
        workloads = [_workload(s, node_name(nodes), **{"k8s.deployment.name": s.name})
                     for s in self.svc.values() if s.name != "reporting"]
        reporting = self.svc["reporting"]
        workloads.append(_workload(reporting, node_name(nodes), **{
            "k8s.cronjob.name": "reporting", "k8s.job.name": reporting.pod.rsplit("-", 1)[0]}))
        workloads += [_workload(unit.service, node_name(nodes), **{"k8s.deployment.name": unit.service.name})
                      for unit in spec.estate.internal]
        self.rng = _random(spec, f"minute-{minute}")
        self.builder = TraceBuilder(seed=self.rng.getrandbits(64), workloads=workloads)

    # -- requests ---------------------------------------------------------------------------

    def _duration(self, low: float, high: float) -> float:
        return round(self.rng.uniform(low, high), 6)

    def _front_door(self) -> tuple[str, str | None]:
        """(client.address, X-Forwarded-For) of an internet request: via the ALB, or direct."""
        client = self.rng.choice(self.clients)
        if self.rng.random() < 0.7:
            return self.rng.choice(ALB_ADDRESSES), client
        return client, None

    def _call(self, caller: Service, callee: Service, method: str, route: str, path: str, start: float,
              duration: float, parent):
        """An HTTP call inside the cluster: the caller's CLIENT span and the callee's SERVER span."""
        client = self.builder.span(
            caller.name, method, kind=SpanKind.CLIENT, start=start, duration=duration, parent=parent,
            attributes=http_client(f"http://{callee.host}:8080{path}", method), scope=HTTPX)
        server = self.builder.server_span(
            callee.name, f"{method} {route}", start=start + 0.001, duration=duration - 0.002,
            client_address=caller.pod_ip, parent=client, legacy=callee.name == "fraud-scoring")
        return server

    def _ledger_db(self, name: str, statement: str, start: float, duration: float, parent, *, legacy: bool,
                   service: str = "ledger"):
        db = self.res["ledger_db"]
        return self.builder.span(
            service, name, kind=SpanKind.CLIENT, start=start, duration=duration, parent=parent, scope=PSYCOPG,
            attributes=database("postgresql", db.details["endpoint"], "ledger", port=db.details["port"],
                                statement=statement, legacy=legacy))

    def _aws(self, service: str, operation: str, resource: dict, start: float, duration: float, parent,
             kind: SpanKind = SpanKind.CLIENT):
        rpc_service, _, method = operation.partition(".")
        return self.builder.span(service, operation, kind=kind, start=start, duration=duration, parent=parent,
                                 attributes=aws_call(rpc_service, method, resource), scope=BOTOCORE)

    def payment(self, t: float) -> None:
        api, ledger, fraud = self.svc["payments-api"], self.svc["ledger"], self.svc["fraud-scoring"]
        lookup, insert = self._duration(0.004, 0.012), self._duration(0.003, 0.015)
        publish = self._duration(0.006, 0.02)
        score_call, ledger_call = lookup + 0.012, insert + publish + 0.015
        address, forwarded = self._front_door()
        root = self.builder.server_span(
            api.name, "POST /v1/payments", start=t, duration=score_call + ledger_call + 0.02, client_address=address,
            forwarded_for=forwarded, error=self.rng.random() < ERROR_RATE)
        scoring = self._call(api, fraud, "POST", "/v1/score", "/v1/score", t + 0.005, score_call, root)
        self._aws(fraud.name, "DynamoDB.GetItem", {"aws.dynamodb.table_names": (self.res["fraud_features"].name,)},
                  t + 0.008, lookup, scoring)
        at = t + 0.007 + score_call
        entry = self._call(api, ledger, "POST", "/v1/entries", "/v1/entries", at, ledger_call, root)
        self._ledger_db("INSERT ledger", "INSERT INTO entries (account_id, amount, currency) VALUES ($1, $2, $3)",
                        at + 0.003, insert, entry, legacy=True)
        events = self.res["ledger_events"]
        self._aws(ledger.name, "SQS.SendMessage", {
            "aws.sqs.queue.url": events.details["url"], "messaging.system": "aws_sqs",
            "messaging.destination.name": events.name, "messaging.operation.type": "send",
        }, at + 0.004 + insert, publish, entry, kind=SpanKind.PRODUCER)

    def statement(self, t: float) -> None:
        api, ledger = self.svc["payments-api"], self.svc["ledger"]
        query, fetch = self._duration(0.002, 0.01), self._duration(0.02, 0.09)
        address, forwarded = self._front_door()
        root = self.builder.server_span(
            api.name, "GET /v1/statements/{statement_id}", start=t, duration=query + fetch + 0.02,
            client_address=address, forwarded_for=forwarded)
        number = self.rng.randint(100000, 999999)
        inner = self._call(api, ledger, "GET", "/v1/statements/{statement_id}", f"/v1/statements/{number}",
                           t + 0.004, query + fetch + 0.012, root)
        self._ledger_db("SELECT ledger", "SELECT s3_key FROM statements WHERE id = $1", t + 0.006, query, inner,
                        legacy=True)
        self._aws(ledger.name, "S3.GetObject", {"aws.s3.bucket": self.res["statements"].name},
                  t + 0.008 + query, fetch, inner)

    def balance(self, t: float) -> None:
        api, ledger = self.svc["payments-api"], self.svc["ledger"]
        query = self._duration(0.002, 0.01)
        address, forwarded = self._front_door()
        root = self.builder.server_span(
            api.name, "GET /v1/accounts/{account_id}/balance", start=t, duration=query + 0.02,
            client_address=address, forwarded_for=forwarded)
        account = self.rng.randint(10000, 99999)
        inner = self._call(api, ledger, "GET", "/v1/accounts/{account_id}/balance",
                           f"/v1/accounts/{account}/balance", t + 0.004, query + 0.012, root)
        self._ledger_db("SELECT ledger", "SELECT sum(amount) FROM entries WHERE account_id = $1", t + 0.006, query,
                        inner, legacy=True)

    def probe(self, t: float) -> None:
        target = self.svc[self.rng.choice(("payments-api", "ledger"))]
        self.builder.server_span(target.name, "GET /healthz", start=t, duration=0.001,
                                 client_address=f"10.42.{self.rng.randint(0, 15)}.1")

    def _back_office(self) -> str:
        return f"10.60.{self.rng.randint(0, 3)}.{self.rng.randint(2, 250)}"

    def _kyc_object(self, operation: str, key: str, start: float, duration: float, parent) -> None:
        host = self.res["kyc_documents"].asset.aliases[1]  # type: ignore[union-attr]
        self._aws("kyc", operation, {"server.address": host, "url.full": f"https://{host}/{key}"},
                  start, duration, parent)

    def kyc_verification(self, t: float) -> None:
        upload, check = self._duration(0.03, 0.12), self._duration(0.01, 0.05)
        root = self.builder.server_span("kyc", "POST /v1/verifications", start=t, duration=upload + check + 0.03,
                                        client_address=self._back_office())
        key = f"documents/{self.rng.getrandbits(64):016x}.pdf"
        self._kyc_object("S3.PutObject", key, t + 0.01, upload, root)
        self._kyc_object("S3.GetObject", key, t + 0.015 + upload, check, root)

    def kyc_document(self, t: float) -> None:
        fetch = self._duration(0.01, 0.06)
        root = self.builder.server_span("kyc", "GET /v1/documents/{document_id}", start=t, duration=fetch + 0.02,
                                        client_address=self._back_office())
        self._kyc_object("S3.GetObject", f"documents/{self.rng.getrandbits(64):016x}.pdf", t + 0.01, fetch, root)

    def page_view(self, t: float) -> None:
        """A visitor from the internet loads a page of the marketing site, rendered from the public bucket."""
        site = self.svc["website"]
        fetch = self._duration(0.005, 0.03)
        route = self.rng.choice(WEBSITE_PAGES)
        address, forwarded = self._front_door()
        root = self.builder.server_span(site.name, f"GET {route}", start=t, duration=fetch + 0.015,
                                        client_address=address, forwarded_for=forwarded)
        self._aws(site.name, "S3.GetObject", {"aws.s3.bucket": self.res["website_assets"].name}, t + 0.005, fetch,
                  root)

    def report(self, t: float) -> None:
        """One run of the nightly job: read the ledger, write export files, about half a minute."""
        durations = [self._duration(0.2, 0.6) for _ in range(REPORT_QUERIES)]
        uploads = [self._duration(0.1, 0.5) for _ in range(REPORT_FILES)]
        root = self.builder.span("reporting", "export daily statements", kind=SpanKind.INTERNAL, start=t,
                                 duration=sum(durations) + sum(uploads) + 1.0, scope="finpay.reporting")
        at = t + 0.5
        for index, duration in enumerate(durations):
            self._ledger_db("SELECT ledger", f"SELECT * FROM entries WHERE booked_on = $1 OFFSET {index * 50000} "
                            "LIMIT 50000", at, duration, root, legacy=False, service="reporting")
            at += duration
        for duration in uploads:
            self._aws("reporting", "S3.PutObject", {"aws.s3.bucket": self.res["exports"].name},
                      at, duration, root)
            at += duration

    def internal(self, index: int, t: float) -> None:
        unit = self.estate.internal[index]
        query, fetch = self._duration(0.003, 0.02), self._duration(0.01, 0.04)
        route = f"/v1/{unit.service.namespace}"
        root = self.builder.server_span(unit.service.name, f"POST {route}", start=t, duration=query + fetch + 0.02,
                                        client_address=self._back_office())
        self._aws(unit.service.name, "DynamoDB.Query", {"aws.dynamodb.table_names": (unit.table.name,)},
                  t + 0.005, query, root)
        self._aws(unit.service.name, "S3.GetObject", {"aws.s3.bucket": unit.bucket.name}, t + 0.008 + query, fetch,
                  root)

    # -- the timeline -----------------------------------------------------------------------

    def plan(self) -> list[tuple[float, str, int]]:
        """The requests that start in this minute as (start time, kind, argument), in time order."""
        base = self.spec.start + 60 * self.minute
        requests: list[tuple[float, str, int]] = []
        for kind, rate in RATES.items():
            expected = rate * self.scale
            for _ in range(self.rng.randint(round(expected * 0.8), round(expected * 1.2))):
                requests.append((base + self.rng.uniform(0, 59.9), kind, 0))
        for index in range(len(self.estate.internal)):
            for _ in range(self.rng.randint(round(INTERNAL_RATE * 0.8), round(INTERNAL_RATE * 1.2))):
                requests.append((base + self.rng.uniform(0, 59.9), "internal", index))
        # The nightly job, once per unit of scale, from half way through the scenario.
        for run in range(self.scale):
            at = self.spec.start + 30 * self.spec.minutes + 5 * run
            if base <= at < base + 60:
                requests.append((at, "report", run))
        requests.sort()
        return requests

    def traces(self) -> Iterator[tuple[float, str, list]]:
        """This minute's finished traces as (end time, hex trace id, spans), in end-time order."""
        pending: list[tuple[float, int, str, list]] = []
        for order, (t, kind, argument) in enumerate(self.plan()):
            if kind == "internal":
                self.internal(argument, t)
            else:
                getattr(self, kind)(t)
            spans = self.builder.take()
            end = max(span.end_time for span in spans) / 1e9
            trace_id = format(spans[0].context.trace_id, "032x")
            heapq.heappush(pending, (end, order, trace_id, spans))
            # Later requests start at or after t, so every trace ending before t is final.
            while pending and pending[0][0] <= t:
                end_time, _, tid, finished = heapq.heappop(pending)
                yield end_time, tid, finished
        while pending:
            end_time, _, tid, finished = heapq.heappop(pending)
            yield end_time, tid, finished


def trace_records(spec: TrafficSpec, workers: int = 1) -> list[TraceRecord]:
    """The traffic as Kafka records of the traces topic, in event-time order.

    With ``workers`` > 1 the minutes are built in that many processes, the same records either way.
    They are spawned (a parent with Kafka client threads must not fork), which re-imports the main
    module: call it from a program with an ``if __name__ == "__main__"`` guard.
    """
    minutes = range(spec.minutes)
    if workers > 1 and spec.minutes > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, spec.minutes), mp_context=context) as pool:
            chunks = list(pool.map(minute_records, repeat(spec), minutes))
    else:
        chunks = [minute_records(spec, minute) for minute in minutes]
    # A long trace (the nightly job) can end after the next minute's first batch: sort across minutes.
    return sorted((record for chunk in chunks for record in chunk), key=lambda record: record.event_time)


def minute_records(spec: TrafficSpec, minute: int) -> list[TraceRecord]:
    """The records of the requests that start in one minute, batched as the Collector would."""
    traffic = Traffic(spec, minute)
    if spec.partition_traces_by_id:
        return [TraceRecord(trace_id.encode(), encode_batch(spans, spec.encoding), end, len(spans))
                for end, trace_id, spans in traffic.traces()]
    records: list[TraceRecord] = []
    full: tuple[list, float] | None = None  # the last full batch, encoded once the next one fills
    batch: list = []
    end = spec.start
    target = traffic.rng.randint(BATCH_MIN_SPANS, BATCH_TARGET_MAX)
    for end, _, spans in traffic.traces():
        batch += spans
        if len(batch) >= target:
            if full is not None:
                records.append(_record(*full, spec.encoding))
            full, batch = (batch, end), []
            target = traffic.rng.randint(BATCH_MIN_SPANS, BATCH_TARGET_MAX)
    if full is not None and len(batch) < BATCH_MIN_SPANS:
        # A short tail joins the last batch rather than going out as an undersized record.
        full, batch = (full[0] + batch, end), []
    for spans, batch_end in ([full] if full else []) + ([(batch, end)] if batch else []):
        records.append(_record(spans, batch_end, spec.encoding))
    return records


def _record(spans: list, end: float, encoding: Encoding) -> TraceRecord:
    return TraceRecord(None, encode_batch(spans, encoding), end, len(spans))
