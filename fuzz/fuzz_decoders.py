"""Coverage-guided fuzzing (atheris, libFuzzer) of every hotpath decoder and of ``hotpath inspect``.

    python fuzz/fuzz_decoders.py [-max_total_time=60] [libFuzzer flags...]   # or: make fuzz FUZZ_SECONDS=60

The first input byte picks the target (findings, alerts, assets, OTLP protobuf, OTLP JSON, or a file
read as ``hotpath inspect`` reads it); the rest is the record. A target may return records or raise
``DecodeError``; anything else is a crash libFuzzer reports with the input that caused it. Every
input is bounded: libFuzzer's ``-timeout`` and ``-rss_limit_mb`` (set below unless given) fail a
slow or memory-hungry decode, and the decoders run with small record limits so their own bounds are
exercised too.

The corpus is made at run time in a temporary folder, one seed per target from each real sample in
``../shared/samples`` (never copied into the repository) and from SDK-encoded OTLP messages, so the
fuzzer starts from inputs that reach deep into each decoder; it lives in ``.run/fuzz/corpus`` and
keeps what libFuzzer adds, so later runs go on from there. Crashing inputs land in ``.run/fuzz/``
(``crash-*``), where ``python fuzz/fuzz_decoders.py .run/fuzz/crash-...`` replays them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import atheris
except ImportError:
    sys.exit("fuzz: atheris is not installed (`pip install atheris`: wheels exist for Linux x86-64 and macOS)")

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples"
ARTIFACTS = ROOT / ".run" / "fuzz"
CORPUS = ARTIFACTS / "corpus"
DEFAULT_FLAGS = ["-timeout=10", "-rss_limit_mb=2048", "-max_len=262144"]
sys.path.insert(0, str(ROOT))

with atheris.instrument_imports(include=["stream"]):
    from stream.demo.tracegen import TraceBuilder, Workload, aws_call, database, http_client
    from stream.entities.resolve import EntityResolver
    from stream.ingest.files import iter_file_records
    from stream.ingest.formats.alerts import decode_alerts
    from stream.ingest.formats.assets import decode_assets
    from stream.ingest.formats.findings import decode_findings
    from stream.ingest.formats.limits import DecodeLimits
    from stream.ingest.formats.otlp import decode_traces
    from stream.models import Asset, DecodeError
    from stream.settings import load_settings

MAX_BYTES = 256 * 1024
LIMITS = DecodeLimits(max_record_bytes=MAX_BYTES, max_spans_per_message=2000, max_attributes_per_span=128)
SETTINGS = load_settings(max_record_bytes=MAX_BYTES, max_spans_per_message=2000, max_attributes_per_span=128)


def resolver() -> EntityResolver:
    known = EntityResolver()
    known.add_asset(Asset(id="service:payments-api", aliases=["payments.internal", "10.0.8.21"]))
    known.add_asset(Asset(id="arn:aws:rds:us-east-1:123456789012:db:ledger", aliases=["ledger.internal"]))
    known.learn_pod("payments-api-7d9f8c6b5-x2k4q", "service:payments-api")
    return known


def inspect_file(value: bytes) -> list:
    """``hotpath inspect``'s file reading: the file's format is sniffed from its bytes."""
    path = ARTIFACTS / "inspect-input"
    path.write_bytes(value)
    return list(iter_file_records(path, resolver(), SETTINGS))


TARGETS: list[tuple[str, Callable[[bytes], object]]] = [
    ("findings", lambda value: decode_findings(value, MAX_BYTES)),
    ("alerts", lambda value: decode_alerts(value, resolver(), MAX_BYTES)),
    ("assets", lambda value: decode_assets(value, MAX_BYTES)),
    ("otlp_proto", lambda value: decode_traces(value, resolver(), encoding="otlp_proto", limits=LIMITS)),
    ("otlp_json", lambda value: decode_traces(value, resolver(), encoding="otlp_json", limits=LIMITS)),
    ("inspect", inspect_file),
]
SEED_FOLDERS = {
    "findings": ("prowler-ocsf", "aws-securityhub-asff"),
    "alerts": ("aws-guardduty",),
    "otlp_json": ("otlp",),
    "inspect": ("prowler-ocsf", "aws-securityhub-asff", "aws-guardduty", "otlp"),
}


def test_one_input(data: bytes) -> None:
    if not data:
        return
    _, decode = TARGETS[data[0] % len(TARGETS)]
    try:
        decode(data[1:])
    except DecodeError as exc:
        if not (isinstance(exc.reason, str) and exc.reason):
            raise AssertionError("a DecodeError without a reason") from exc


def sdk_messages() -> Iterator[tuple[str, bytes]]:
    """Real OpenTelemetry SDK spans through each encoding: internet traffic, a database, S3, HTTP."""
    builder = TraceBuilder(seed=9, workloads=[Workload("payments-api", pod="payments-api-7d9f8c6b5-x2k4q")])
    page = builder.server_span("payments-api", "POST /charges", start=1.7e9, client_address="81.2.69.142",
                               forwarded_for="81.2.69.142, 10.0.0.1")
    builder.client_span("payments-api", "SELECT", start=1.7e9, parent=page,
                        attributes=database("postgresql", "ledger.internal", "ledger"))
    builder.client_span("payments-api", "PutObject", start=1.7e9, parent=page,
                        attributes=aws_call("S3", "PutObject", {"aws.s3.bucket": "acme-statements"}))
    builder.client_span("payments-api", "GET", start=1.7e9, parent=page, attributes=http_client("http://kyc.internal/v1"))
    yield "otlp_proto", builder.to_otlp_proto()
    yield "otlp_json", builder.to_otlp_json()
    yield "inspect", builder.to_otlp_proto()


def seed_corpus(folder: Path) -> int:
    """Write one seed per target and sample (its first byte selects the target); returns how many."""
    names = [name for name, _ in TARGETS]
    seeds = list(sdk_messages())
    for target, sample_folders in SEED_FOLDERS.items():
        for sample_folder in sample_folders:
            seeds += [(target, path.read_bytes()) for path in sorted((SAMPLES / sample_folder).glob("*.json"))]
    seeds.append(("assets", b'{"assets": [{"id": "service:payments-api", "aliases": ["payments.internal"]}]}'))
    for number, (target, value) in enumerate(seeds):
        (folder / f"seed-{number:03d}-{target}").write_bytes(bytes([names.index(target)]) + value)
    return len(seeds)


def main(argv: list[str]) -> None:
    flags = [arg for arg in argv[1:] if arg.startswith("-")]
    inputs = [arg for arg in argv[1:] if not arg.startswith("-")]
    defaults = [flag for flag in DEFAULT_FLAGS if not any(arg.startswith(flag.split("=")[0] + "=") for arg in flags)]
    CORPUS.mkdir(parents=True, exist_ok=True)
    if not inputs:  # a fuzzing run, not a replay of given inputs
        count = seed_corpus(CORPUS)
        print(f"fuzz: {count} seeds from {SAMPLES if SAMPLES.is_dir() else 'the SDK only (no samples)'}", flush=True)
        inputs = [str(CORPUS)]
    atheris.Setup([argv[0], *defaults, f"-artifact_prefix={ARTIFACTS}/", *flags, *inputs], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
