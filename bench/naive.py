"""The naive baseline: the Faust pipeline most people would write for this job, for comparison only.

Every span becomes its own stream event (``topic.send`` per span, keyed by the entity it touches)
and every event updates a hopping windowed table, the textbook Faust way. It reads the same trace
topic hotpath does and resolves entities with the same helpers, but does nothing else (no findings,
no scoring), so its figure is an upper bound for such a design. Not to be optimized.

    python -m bench.naive   (settings from HOTPATH_* variables, like ``hotpath worker``)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import faust
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.harness import LOG_DIR, ROOT, HotpathProcess, fresh_topics, publish, traffic_records, wait_until
from stream.demo.scenario import Scenario
from stream.entities.resolve import dynamodb_table_arn, s3_bucket_arn, service_entity, sqs_queue_arn
from stream.settings import Settings, load_settings
from stream.worker.faust_config import faust_broker_kwargs

WINDOW_S, STEP_S = 900.0, 60.0
WARM_UP_S = 2.0


class SpanEvent(faust.Record, serializer="json"):
    entity: str
    service: str
    error: bool
    end_s: float


def span_entity(resource: dict[str, str], service: str, kind: int, attributes: dict[str, str]) -> str:
    """What one span touches, worked out span by span."""
    if "aws.s3.bucket" in attributes:
        return s3_bucket_arn(attributes["aws.s3.bucket"])
    if "aws.dynamodb.table_names" in attributes:
        return dynamodb_table_arn(attributes["aws.dynamodb.table_names"], resource.get("cloud.region"),
                                  resource.get("cloud.account.id"))
    if "aws.sqs.queue.url" in attributes:
        return sqs_queue_arn(attributes["aws.sqs.queue.url"]) or attributes["aws.sqs.queue.url"]
    if kind == 3 and "peer.service" in attributes:
        return service_entity(attributes["peer.service"])
    if kind == 3 and "server.address" in attributes:
        return attributes["server.address"]
    return service


def create_app(settings: Settings) -> faust.App:
    app = faust.App(f"{settings.app_id}-naive", **faust_broker_kwargs(settings), store="memory://",
                    topic_partitions=4, consumer_auto_offset_reset="earliest", web_port=settings.web_port,
                    web_bind=settings.web_host, datadir=str(settings.data_dir))
    traces = app.topic(settings.topic_traces, value_type=bytes, value_serializer="raw")
    spans = app.topic(f"{settings.app_id}-naive-spans", key_type=str, value_type=SpanEvent, partitions=4, internal=True)
    counts = app.Table("span-counts", default=int, partitions=4).hopping(WINDOW_S, STEP_S, expires=4 * WINDOW_S)
    processed = {"spans": 0}

    @app.agent(traces)
    async def explode(stream):
        async for value in stream:
            request = ExportTraceServiceRequest.FromString(value)
            for resource_spans in request.resource_spans:
                resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
                service = service_entity(resource.get("service.name", "unknown"))
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        attributes = {kv.key: kv.value.string_value or ",".join(
                            item.string_value for item in kv.value.array_value.values) for kv in span.attributes}
                        entity = span_entity(resource, service, span.kind, attributes)
                        await spans.send(key=entity, value=SpanEvent(
                            entity=entity, service=service, error=span.status.code == 2,
                            end_s=span.end_time_unix_nano / 1e9))

    @app.agent(spans)
    async def count(stream):
        async for event in stream:
            counts[event.entity] += 1
            processed["spans"] += 1

    @app.page("/progress")
    async def progress(view, request):
        return view.json(processed)

    return app


class NaiveProcess(HotpathProcess):
    """This module as a worker process, run like ``hotpath worker`` (settings, web port, log)."""

    def start(self) -> NaiveProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.naive"], env=self.env, cwd=ROOT, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def spans(self) -> int:
        return int(self.get_json("/progress")["spans"])

    def get_json(self, path: str) -> dict:
        status, body = self.get(path)
        if status != 200:
            raise RuntimeError(f"{self.name} answered {path} with {status}")
        return json.loads(body)


def measure(base: Settings, scenario: Scenario, window_s: float, windows: int) -> list[float]:
    """Spans per second of the naive pipeline over ``windows`` consecutive windows of ``window_s``.

    It is far too slow to read the whole scenario in a benchmark's time, so it is timed on its
    first part, once it is up and busy.
    """
    with fresh_topics(base, "naive") as settings:
        traces = [record for record in traffic_records(settings, scenario) if record[0] == settings.topic_traces]
        publish(settings, traces)
        log_dir = LOG_DIR / settings.app_id
        log_dir.mkdir(parents=True, exist_ok=True)
        with NaiveProcess("naive", settings, log_dir) as process:
            wait_until(lambda: _spans(process) > 0, 120, "naive pipeline busy", [process], watch_progress=False)
            time.sleep(WARM_UP_S)
            rates = []
            for _ in range(windows):
                before, started = process.spans(), time.monotonic()
                time.sleep(window_s)
                rates.append((process.spans() - before) / (time.monotonic() - started))
            return rates


def _spans(process: NaiveProcess) -> int:
    try:
        return process.spans()
    except OSError:
        return 0


if __name__ == "__main__":
    faust.Worker(create_app(load_settings()), loglevel="WARNING").execute_from_commandline()
