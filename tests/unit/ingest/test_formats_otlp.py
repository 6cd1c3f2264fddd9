"""OTLP traces made by the real opentelemetry-sdk and its OTLP encoder, folded into touches."""

from __future__ import annotations

import orjson
import pytest
from opentelemetry.trace import SpanKind
from paths import SAMPLES

from stream.demo.tracegen import TraceBuilder, Workload, aws_call, database, encode_batch, http_client
from stream.entities.resolve import EntityResolver
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.formats.otlp import OtlpDecoder, decode_traces, detect_encoding
from stream.models import Asset, DecodeError, Touch, TraceBatch

ACCOUNT = "111122223333"
REGION = "eu-west-1"
T0 = 1_772_446_800.0  # 2026-03-02T10:20:00Z
INTERNET = "81.2.69.142"
ENCODINGS = ("otlp_proto", "otlp_json")
ORDERS_DB = f"arn:aws:rds:{REGION}:{ACCOUNT}:db:orders"


@pytest.fixture
def builder() -> TraceBuilder:
    return TraceBuilder(seed=11, workloads=[
        Workload("frontend", pod="frontend-6d8f7c9b5-q2w3e", namespace="shop", region=REGION, account=ACCOUNT),
        Workload("orders", pod="orders-7d9f8c6b5-x2k4q", namespace="shop", region=REGION, account=ACCOUNT),
    ])


@pytest.fixture
def resolver() -> EntityResolver:
    resolver = EntityResolver()
    resolver.add_asset(Asset(id=ORDERS_DB, aliases=["orders-db.internal", "orders.c9x2.eu-west-1.rds.amazonaws.com"]))
    resolver.add_asset(Asset(id="service:frontend", aliases=["10.0.7.21"]))
    resolver.add_asset(Asset(id="service:billing", aliases=["billing.shop.svc.cluster.local"]))
    return resolver


def decode(builder: TraceBuilder, resolver: EntityResolver, limits: DecodeLimits | None = None) -> TraceBatch:
    """Decode the builder's spans in both encodings; they must agree touch for touch."""
    proto = decode_traces(builder.to_otlp_proto(), resolver, encoding="otlp_proto", limits=limits)
    json = decode_traces(builder.to_otlp_json(), resolver, encoding="otlp_json", limits=limits)
    assert [t.to_record() for t in json.touches] == [t.to_record() for t in proto.touches]
    assert json.pods == proto.pods
    return proto


def touches(batch: TraceBatch) -> dict[str, Touch]:
    return {touch.entity: touch for touch in batch.touches}


def call(builder: TraceBuilder, attributes: dict, *, service: str = "orders", start: float = T0, **options) -> None:
    builder.client_span(service, "call", start=start, attributes=attributes, **options)


def test_s3_bucket_named_by_attribute_and_by_virtual_hosted_address(builder, resolver):
    call(builder, aws_call("S3", "GetObject", {"aws.s3.bucket": "acme-invoices"}))
    call(builder, aws_call("S3", "PutObject", {"server.address": "acme-invoices.s3.eu-west-1.amazonaws.com"}))
    call(builder, http_client("https://acme-exports.s3.amazonaws.com/2026/03/report.csv"))

    found = touches(decode(builder, resolver))

    assert found["arn:aws:s3:::acme-invoices"].spans == 2
    assert found["arn:aws:s3:::acme-invoices"].services == ["service:orders"]
    assert found["arn:aws:s3:::acme-exports"].spans == 1


def test_path_style_s3_url_names_the_bucket(builder, resolver):
    call(builder, aws_call("S3", "GetObject", {"url.full": "https://s3.eu-west-1.amazonaws.com/acme-statements/2026/03.pdf"}))

    assert list(touches(decode(builder, resolver))) == ["arn:aws:s3:::acme-statements"]


def test_dynamodb_span_touches_every_table_with_the_resource_region_and_account(builder, resolver):
    call(builder, aws_call("DynamoDB", "BatchGetItem", {"aws.dynamodb.table_names": ("orders", "customers")}))

    assert sorted(touches(decode(builder, resolver))) == [
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/customers",
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/orders",
    ]


def test_sqs_queue_url_becomes_the_queue_arn_with_old_and_new_attribute_names(builder, resolver):
    queue = "https://sqs.eu-west-1.amazonaws.com/444455556666/order-events"
    call(builder, aws_call("SQS", "SendMessage", {"aws.sqs.queue.url": queue}), kind=SpanKind.PRODUCER)
    call(builder, aws_call("SQS", "SendMessage", {"aws.queue_url": queue}))
    call(builder, aws_call("SQS", "SendMessage", {"aws.sqs.queue.url": "http://127.0.0.1:5000/123456789012/local-q"}))

    found = touches(decode(builder, resolver))

    assert found["arn:aws:sqs:eu-west-1:444455556666:order-events"].spans == 2
    assert f"arn:aws:sqs:{REGION}:123456789012:local-q" in found


def test_lambda_sns_and_secrets_manager_arns(builder, resolver):
    function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:resize-image"
    secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:orders/db-AbCdEf"
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:order-shipped"
    call(builder, aws_call("Lambda", "Invoke", {"aws.lambda.invoked_arn": f"{function}:live"}))
    call(builder, aws_call("SNS", "Publish", {"aws.sns.topic.arn": topic}), kind=SpanKind.PRODUCER)
    call(builder, aws_call("SecretsManager", "GetSecretValue", {"aws.secretsmanager.secret.arn": secret}))

    assert sorted(touches(decode(builder, resolver))) == sorted([function, topic, secret])


def test_aws_call_or_endpoint_naming_no_resource_touches_nothing(builder, resolver):
    call(builder, aws_call("STS", "GetCallerIdentity", {"server.address": "sts.eu-west-1.amazonaws.com"}))
    call(builder, http_client("https://ec2.eu-west-1.amazonaws.com/?Action=DescribeInstances"))

    batch = decode(builder, resolver)

    assert batch.touches == []


def test_database_spans_with_old_and_new_names_resolve_through_asset_aliases(builder, resolver):
    call(builder, database("postgresql", "orders-db.internal", "orders"))
    call(builder, database("postgresql", "ORDERS.c9x2.eu-west-1.rds.amazonaws.com", "orders", legacy=True),
         start=T0 + 1)
    call(builder, database("mysql", "crm-db.internal", "crm", legacy=True))
    builder.span("orders", "cache lookup", start=T0, attributes=database("redis", "cache.internal", "0"))

    found = touches(decode(builder, resolver))

    assert found[ORDERS_DB].spans == 2
    assert found[ORDERS_DB].services == ["service:orders"]
    seen = (found[ORDERS_DB].first_seen, found[ORDERS_DB].last_seen)
    assert seen == pytest.approx((T0 + 0.005, T0 + 1.005), abs=1e-6)
    assert "db:mysql://crm-db.internal/crm" in found
    assert "db:redis://cache.internal/0" in found  # an INTERNAL span carrying db attributes


def test_aliases_added_between_messages_apply_to_the_next_message(builder):
    call(builder, database("postgresql", "ledger-db.internal", "ledger"))
    builder.server_span("orders", "GET /orders", start=T0, client_address="10.0.5.5")
    value = builder.to_otlp_proto()
    resolver = EntityResolver()

    before = touches(decode_traces(value, resolver))
    resolver.add_asset(Asset(id="arn:aws:rds:eu-west-1:111122223333:db:ledger", aliases=["ledger-db.internal"]))
    resolver.add_asset(Asset(id="service:frontend", aliases=["10.0.5.5"]))
    after = touches(decode_traces(value, resolver))

    assert "db:postgresql://ledger-db.internal/ledger" in before and before["service:orders"].services == []
    assert "arn:aws:rds:eu-west-1:111122223333:db:ledger" in after
    assert after["service:orders"].services == ["service:frontend"]


def test_peers_by_peer_service_and_by_alias_and_unknown_hosts_ignored(builder, resolver):
    call(builder, {**http_client("http://10.0.9.4:8080/charge"), "peer.service": "payments"})
    call(builder, {"service.peer.name": "ledger", "rpc.system.name": "grpc", "server.address": "10.0.9.5"})
    call(builder, http_client("http://billing.shop.svc.cluster.local/invoices", legacy=True))
    call(builder, http_client("https://api.stripe.example/v1/charges"))
    builder.span("orders", "render", start=T0, attributes=http_client("http://billing.shop.svc.cluster.local/x"))

    found = touches(decode(builder, resolver))

    assert sorted(found) == ["service:billing", "service:ledger", "service:payments"]
    assert found["service:billing"].spans == 1  # the INTERNAL span without db attributes touches no peer


def test_internet_traffic_by_client_address_and_first_forwarded_hop(builder, resolver):
    builder.server_span("frontend", "GET /cart", start=T0, client_address=INTERNET)
    builder.server_span("frontend", "GET /cart", start=T0 + 1, client_address="10.0.0.2",
                        forwarded_for=f"{INTERNET}, 10.0.0.9")
    builder.server_span("frontend", "GET /cart", start=T0 + 2, client_address="10.0.0.3")
    builder.server_span("frontend", "GET /cart", start=T0 + 3, client_address=INTERNET, forwarded_for="10.1.2.3")
    builder.server_span("frontend", "GET /cart", start=T0 + 4, client_address="10.0.0.4", legacy=True)
    builder.server_span("frontend", "GET /cart", start=T0 + 5,
                        attributes={"net.sock.peer.addr": "2a00:1450:4001:80b::200e"})

    frontend = touches(decode(builder, resolver))["service:frontend"]

    assert (frontend.spans, frontend.internet_spans) == (6, 3)
    assert (frontend.first_seen, frontend.last_seen) == pytest.approx((T0 + 0.02, T0 + 5.02), abs=1e-6)


def test_internet_traffic_is_counted_only_on_server_spans(builder, resolver):
    builder.span("orders", "receive", kind=SpanKind.CONSUMER, start=T0, attributes={"client.address": INTERNET})

    orders = touches(decode(builder, resolver))["service:orders"]

    assert (orders.spans, orders.internet_spans) == (1, 0)


def test_errors_are_spans_with_error_status(builder, resolver):
    for second in range(4):
        call(builder, aws_call("S3", "GetObject", {"aws.s3.bucket": "acme-invoices"}), start=T0 + second,
             error=second % 2 == 0)

    bucket = touches(decode(builder, resolver))["arn:aws:s3:::acme-invoices"]

    assert (bucket.spans, bucket.errors) == (4, 2)


def test_trace_id_sample_keeps_the_first_distinct_ids_up_to_the_limit(builder, resolver):
    roots = [builder.server_span("frontend", "GET /", start=T0 + n, client_address=INTERNET) for n in range(7)]
    builder.server_span("frontend", "GET /again", start=T0 + 8, parent=roots[0], client_address=INTERNET)

    frontend = touches(decode(builder, resolver, DecodeLimits(max_trace_ids=3)))["service:frontend"]

    assert frontend.spans == 8
    assert frontend.trace_ids == [format(root.get_span_context().trace_id, "032x") for root in roots[:3]]


def test_pods_are_learned_from_resource_attributes(builder, resolver):
    builder.server_span("frontend", "GET /", start=T0, client_address=INTERNET)
    builder.server_span("orders", "GET /orders", start=T0, client_address="10.0.0.8")

    assert decode(builder, resolver).pods == {
        "frontend-6d8f7c9b5-q2w3e": "service:frontend", "orders-7d9f8c6b5-x2k4q": "service:orders",
    }


def test_caller_is_the_parent_span_service_else_the_service_the_client_address_names(builder, resolver):
    page = builder.server_span("frontend", "GET /checkout", start=T0, client_address=INTERNET)
    outgoing = builder.client_span("frontend", "POST", start=T0 + 0.001, parent=page,
                                   attributes=http_client("http://orders.shop.svc.cluster.local/orders", "POST"))
    served = builder.server_span("orders", "POST /orders", start=T0 + 0.002, parent=outgoing, client_address="10.0.0.8")
    builder.client_span("orders", "INSERT", start=T0 + 0.003, parent=served,
                        attributes=database("postgresql", "orders-db.internal", "orders"))
    builder.server_span("orders", "GET /orders", start=T0 + 1, client_address="10.0.7.21")  # no parent: by alias
    builder.server_span("orders", "GET /health", start=T0 + 2, client_address="10.0.0.1")  # unknown caller

    found = touches(decode(builder, resolver))

    assert found["service:orders"].services == ["service:frontend"]
    assert found["service:orders"].spans == 3
    assert found["service:frontend"].services == []
    assert found[ORDERS_DB].services == ["service:orders"]


def test_a_parent_in_another_message_leaves_the_caller_to_the_address(builder, resolver):
    page = builder.server_span("frontend", "GET /checkout", start=T0, client_address=INTERNET)
    outgoing = builder.client_span("frontend", "POST", start=T0 + 0.001, parent=page, attributes={})
    builder.take()
    builder.server_span("orders", "POST /orders", start=T0 + 0.002, parent=outgoing, client_address="10.0.0.8")

    assert touches(decode(builder, resolver))["service:orders"].services == []


def test_workload_cloud_identity_is_touched_by_inbound_traffic(resolver):
    function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:thumbnails"
    builder = TraceBuilder(seed=3, workloads=[
        Workload("thumbnails", region=REGION, account=ACCOUNT,
                 extra={"cloud.resource_id": function, "faas.name": "thumbnails"}),
        Workload("legacy", region=REGION, account=ACCOUNT,
                 extra={"cloud.platform": "aws_ec2", "host.id": "i-0abc123def4567890"}),
    ])
    builder.server_span("thumbnails", "POST /", start=T0, client_address=INTERNET,
                        attributes={"aws.lambda.invoked_arn": f"{function}:prod"})
    builder.server_span("legacy", "GET /", start=T0, client_address=INTERNET)

    found = touches(decode(builder, resolver))

    assert sorted(found) == sorted([
        "service:thumbnails", function,
        "service:legacy", f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0abc123def4567890",
    ])
    assert found[function].internet_spans == 1


def test_a_resource_without_a_service_name_is_named_by_its_workload(resolver):
    builder = TraceBuilder(seed=4, workloads=[Workload("cart", pod="cart-5f6d7c8b9-abcde", extra={
        "service.name": "unknown_service:python", "k8s.deployment.name": "cart-api"})])
    builder.server_span("cart", "GET /cart", start=T0, client_address=INTERNET)

    batch = decode(builder, resolver)

    assert [t.entity for t in batch.touches] == ["service:cart-api"]
    assert batch.pods == {"cart-5f6d7c8b9-abcde": "service:cart-api"}


def test_a_batch_folds_many_spans_into_few_touches(builder, resolver):
    for n in range(300):
        root = builder.server_span("orders", "GET /orders", start=T0 + n,
                                   client_address=INTERNET if n % 3 else "10.0.0.1")
        call(builder, database("postgresql", "orders-db.internal", "orders", legacy=n % 2 == 0), start=T0 + n,
             parent=root)
        call(builder, aws_call("S3", "GetObject", {"aws.s3.bucket": "acme-invoices"}), start=T0 + n, parent=root)

    batch = decode(builder, resolver)

    assert [(t.entity, t.spans, t.internet_spans) for t in batch.touches] == [
        ("service:orders", 300, 200), (ORDERS_DB, 300, 0), ("arn:aws:s3:::acme-invoices", 300, 0),
    ]


def test_json_span_kinds_may_be_enum_names(builder, resolver):
    builder.server_span("frontend", "GET /", start=T0, client_address=INTERNET)
    document = orjson.loads(builder.to_otlp_json())
    for resource in document["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                span["kind"] = "SPAN_KIND_SERVER"

    batch = decode_traces(orjson.dumps(document), resolver, encoding="otlp_json")

    assert [(t.entity, t.internet_spans) for t in batch.touches] == [("service:frontend", 1)]


def test_json_ids_are_hex_as_the_collector_writes_them(builder, resolver):
    root = builder.server_span("frontend", "GET /", start=T0, client_address=INTERNET)
    span = orjson.loads(builder.to_otlp_json())["resourceSpans"][0]["scopeSpans"][0]["spans"][0]

    assert span["traceId"] == format(root.get_span_context().trace_id, "032x")
    assert span["spanId"] == format(root.get_span_context().span_id, "016x")


def test_detect_encoding(builder):
    builder.server_span("frontend", "GET /", start=T0)

    assert detect_encoding(builder.to_otlp_proto()) == "otlp_proto"
    assert detect_encoding(builder.to_otlp_json()) == "otlp_json"
    assert detect_encoding(b"  \n" + builder.to_otlp_json()) == "otlp_json"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_too_many_spans_is_refused_with_the_limit_in_the_reason(builder, resolver, encoding):
    for n in range(5):
        builder.server_span("frontend", "GET /", start=T0 + n)

    with pytest.raises(DecodeError, match="5 spans, over the 4-span limit"):
        decode_traces(encode_batch(builder.spans, encoding), resolver, encoding=encoding,
                      limits=DecodeLimits(max_spans_per_message=4))


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_too_many_attributes_on_a_span_is_refused(builder, resolver, encoding):
    call(builder, {f"app.tag.{n}": n for n in range(20)})

    with pytest.raises(DecodeError, match="20 attributes, over the 16-attribute limit"):
        decode_traces(encode_batch(builder.spans, encoding), resolver, encoding=encoding,
                      limits=DecodeLimits(max_attributes_per_span=16))


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_oversized_record_is_refused_before_parsing(builder, resolver, encoding):
    builder.server_span("frontend", "GET /", start=T0)
    value = encode_batch(builder.spans, encoding)

    with pytest.raises(DecodeError, match="over the 100-byte limit"):
        decode_traces(value, resolver, encoding=encoding, limits=DecodeLimits(max_record_bytes=100))


def test_unknown_encoding_is_a_decode_error(builder, resolver):
    with pytest.raises(DecodeError, match="unknown trace encoding"):
        decode_traces(b"{}", resolver, encoding="zipkin")  # type: ignore[arg-type]


def test_record_may_be_any_bytes_like_value(builder, resolver):
    builder.server_span("frontend", "GET /", start=T0, client_address=INTERNET)
    value = builder.to_otlp_proto()

    assert decode_traces(memoryview(value), resolver) == decode_traces(value, resolver)
    with pytest.raises(DecodeError, match="must be bytes"):
        decode_traces(value.decode("latin-1"), resolver)  # type: ignore[arg-type]


def test_empty_message_has_no_touches(resolver):
    assert decode_traces(b"", resolver) == TraceBatch(touches=[], pods={})
    assert decode_traces(b'{"resourceSpans": []}', resolver, encoding="otlp_json").touches == []


@pytest.mark.skipif(not (SAMPLES / "otlp" / "otlp_json_trace.json").is_file(),
                    reason="real samples (../shared/samples) are absent")
def test_the_published_otlp_json_example(resolver):
    value = (SAMPLES / "otlp" / "otlp_json_trace.json").read_bytes()

    batch = decode_traces(value, resolver, encoding=detect_encoding(value))

    assert batch.pods == {}
    assert [t.to_record() for t in batch.touches] == [{
        "kind": "touch", "entity": "service:my.service", "services": [], "spans": 1, "errors": 0,
        "internet_spans": 0, "first_seen": "2018-12-13T14:51:01.000Z", "last_seen": "2018-12-13T14:51:01.000Z",
        "trace_ids": ["5b8efff798038103d269b633813fc60c"],
    }]


def kept_across_messages(decoder: OtlpDecoder) -> dict[str, dict]:
    """Everything a decoder remembers from one message to the next."""
    return {
        "targets": decoder.fold_caches.targets, "callers": decoder.fold_caches.callers,
        "public addresses": decoder.fold_caches.public_addresses, "hosts": decoder.fold_caches.host_needs_url,
        "resources": decoder.protobuf.resources, "statuses": decoder.protobuf.error_statuses,
        "values": decoder.protobuf.values,
    }


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_what_a_decoder_keeps_across_messages_stays_within_its_bound(builder, resolver, encoding):
    bound = 8
    decoder = OtlpDecoder(resolver, cache_limit=bound)
    for n in range(3 * bound):  # new resources, targets, callers and hosts in every message
        builder.server_span(f"svc-{n}", "GET /", start=T0 + n, client_address=f"81.2.69.{n}")
        call(builder, {**http_client(f"https://api-{n}.example.com/v1"), "aws.s3.bucket": f"bucket-{n}"},
             service=f"svc-{n}", start=T0 + n)
        value = builder.to_otlp_proto() if encoding == "otlp_proto" else builder.to_otlp_json()
        builder.take()

        batch = decoder.decode(value, encoding)

        assert sorted(touches(batch)) == sorted([f"service:svc-{n}", f"arn:aws:s3:::bucket-{n}"])
        assert touches(batch)[f"service:svc-{n}"].internet_spans == 1
        assert {name: len(kept) for name, kept in kept_across_messages(decoder).items() if len(kept) > bound} == {}
    # the compiled walk decides in C whether a host makes the URL needed, and reads the caller's addresses: it keeps
    # no host cache and no caller combinations
    assert decoder.fold_caches.targets and decoder.fold_caches.public_addresses
    assert (decoder.fold_caches.host_needs_url and decoder.fold_caches.callers) or decoder.compiled


def test_decoders_do_not_share_what_they_keep(builder, resolver):
    call(builder, aws_call("DynamoDB", "Query", {"aws.dynamodb.table_names": ("orders", "items", "carts")}))
    value = builder.to_otlp_proto()
    one_table = OtlpDecoder(resolver, DecodeLimits(max_entities_per_span=1))
    every_table = OtlpDecoder(resolver)

    narrow = one_table.decode(value)

    assert all(len(kept) == 0 for kept in kept_across_messages(every_table).values())
    wide = every_table.decode(value)
    assert len(narrow.touches) == 1 and narrow.over_cap
    assert len(wide.touches) == 3 and wide.over_cap is None
