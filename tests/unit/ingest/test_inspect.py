"""``hotpath inspect`` over a folder of mixed real-format files, and the ``iter_file_records`` API."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from inputs import ASSET_YAML, POD, config_event, eks_finding, falco_event
from otlp_messages import payments_traffic, traces_builder
from paths import ROOT, SAMPLES

from stream.commands.main import main
from stream.demo.tracegen import aws_call
from stream.entities.resolve import EntityResolver
from stream.ingest.files import ErrorRecord, iter_file_records
from stream.models import Asset, Finding, Touch
from stream.settings import load_settings

needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="real samples (../shared/samples) are absent")
LEDGER = "arn:aws:rds:eu-west-1:111122223333:db:ledger"
T0 = 1_772_446_800.0  # 2026-03-02T10:20:00Z


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """Assets, OTLP JSON lines, OTLP protobuf, findings and alerts (one line broken, one unknown)."""
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "1-assets.yaml").write_text(ASSET_YAML)
    builder = traces_builder()
    lines = []
    for batch in range(2):
        payments_traffic(builder, T0 + batch * 60)
        lines.append(orjson.dumps(orjson.loads(builder.to_otlp_json())))  # one request per line
        builder.take()
    (folder / "2-traces.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    builder.client_span("payments-api", "PutObject", start=T0 + 120,
                        attributes=aws_call("S3", "PutObject", {"aws.s3.bucket": "acme-statements"}))
    (folder / "3-traces.pb").write_bytes(builder.to_otlp_proto())
    (folder / "4-config.json").write_bytes(orjson.dumps(config_event("NON_COMPLIANT"), option=orjson.OPT_INDENT_2))
    alerts = [orjson.dumps(falco_event()), b'{"rule": "Terminal shell", "priority":', orjson.dumps(eks_finding()),
              b"", b'{"hello": "world"}']
    (folder / "5-alerts.ndjson").write_bytes(b"\n".join(alerts) + b"\n")
    return folder


def inspect(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    code = main(["inspect", *args])
    captured = capsys.readouterr()
    return code, [orjson.loads(line) for line in captured.out.splitlines()], captured.err


def test_inspect_prints_every_record_of_a_mixed_folder_and_fails_on_the_broken_lines(mixed_folder, capsys):
    code, records, err = inspect(capsys, str(mixed_folder))

    assert code == 1
    errors = [r for r in records if r["kind"] == "error"]
    assert [(e["origin"], e["reason"].split(":")[0]) for e in errors] == [
        (f"{mixed_folder}/5-alerts.ndjson:2", "not valid JSON"),
        (f"{mixed_folder}/5-alerts.ndjson:5", "unknown format"),
    ]
    kinds = [r["kind"] for r in records]
    assert kinds.count("asset") == 2
    assert kinds.count("finding") == 1
    assert kinds.count("alert") == 2
    assert f"{len(records)} records, 2 failed" in err


def test_inspect_resolves_names_with_the_assets_and_pods_it_has_read(mixed_folder, capsys):
    _, records, _ = inspect(capsys, str(mixed_folder))

    touches = [r for r in records if r["kind"] == "touch"]
    ledger = [t for t in touches if t["entity"] == LEDGER]
    assert len(ledger) == 2  # the database host is an alias in 1-assets.yaml; one touch per JSON line
    assert all(t["services"] == ["service:payments-api"] for t in ledger)
    service = [t for t in touches if t["entity"] == "service:payments-api"]
    assert [t["internet_spans"] for t in service] == [1, 1]
    assert [t["entity"] for t in touches][-1] == "arn:aws:s3:::acme-statements"  # from the protobuf file
    falco = next(r for r in records if r["kind"] == "alert" and r["source"] == "falco")
    assert falco["entities"] == ["service:payments-api"]  # the pod was learned from the traces
    assert falco["subject"] == POD


def test_inspect_of_clean_files_exits_zero(mixed_folder, capsys):
    (mixed_folder / "5-alerts.ndjson").unlink()
    code, records, err = inspect(capsys, str(mixed_folder / "4-config.json"), str(mixed_folder / "1-assets.yaml"))
    assert code == 0
    assert [r["kind"] for r in records] == ["finding", "asset", "asset"]
    assert records[0]["resources"] == ["arn:aws:s3:::acme-statements"]
    assert "3 records, 0 failed" in err


def test_asset_file_option_resolves_aliases_from_the_start(mixed_folder, capsys):
    code, records, _ = inspect(capsys, "--asset-file", str(mixed_folder / "1-assets.yaml"),
                               str(mixed_folder / "2-traces.jsonl"))
    assert code == 0
    assert {r["kind"] for r in records} == {"touch"}
    assert LEDGER in {r["entity"] for r in records}


@needs_samples
def test_real_samples_inspect_as_the_command_line_tool(tmp_path):
    prowler = tmp_path / "prowler.ocsf.json"
    shutil.copy(SAMPLES / "prowler-ocsf/example_output_aws.ocsf.json", prowler)
    garbage = tmp_path / "capture.bin"
    garbage.write_bytes(b"\x00\x01\x02 not a protobuf at all \xff\xfe")

    done = subprocess.run(
        [sys.executable, "-m", "stream.commands.main", "inspect", str(prowler),
         str(SAMPLES / "otlp/otlp_json_trace.json"),
         str(SAMPLES / "aws-securityhub-asff/eventbridge-imported_afsbp-ec2.7.json"), str(garbage)],
        capture_output=True, cwd=ROOT, timeout=120,
    )

    records = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1
    assert [r["kind"] for r in records] == ["finding"] * 5 + ["touch", "finding", "error"]
    assert records[5]["entity"] == "service:my.service"
    assert records[5]["trace_ids"] == ["5b8efff798038103d269b633813fc60c"]
    assert records[6]["resources"] == ["arn:aws:iam::111111111111:root"]
    assert records[7]["origin"] == f"{garbage}:1"
    assert b"Traceback" not in done.stderr


def records_of(path: Path, resolver: EntityResolver | None = None, **settings: Any) -> list:
    return list(iter_file_records(path, resolver or EntityResolver(), load_settings(**settings)))


def test_one_bad_item_of_an_array_spoils_only_itself(tmp_path):
    mixed = tmp_path / "batch.json"
    items = [config_event("NON_COMPLIANT"), {"id": 3}, falco_event()]
    mixed.write_bytes(orjson.dumps(items, option=orjson.OPT_INDENT_2))
    records = records_of(mixed)
    assert [r.kind for r in records] == ["finding", "error", "alert"]
    assert records[1].origin == f"{mixed}:1[1]"


def test_overlong_line_is_an_error_and_the_next_lines_still_decode(tmp_path):
    lines = tmp_path / "alerts.ndjson"
    huge = orjson.dumps(falco_event(output="x" * 5000))
    lines.write_bytes(b"\n".join([orjson.dumps(falco_event()), huge, orjson.dumps(falco_event(uuid="u-3"))]) + b"\n")
    records = records_of(lines, max_record_bytes=2000)
    assert [r.kind for r in records] == ["alert", "error", "alert"]
    assert records[1] == ErrorRecord("line is over the 2000-byte limit (HOTPATH_MAX_RECORD_BYTES)", f"{lines}:2")
    assert records[2].uid == "u-3"


def test_json_lines_with_a_broken_first_line_are_still_read_line_by_line(tmp_path):
    lines = tmp_path / "alerts.ndjson"
    lines.write_bytes(b'{"rule": "Terminal shell",\n' + orjson.dumps(falco_event()) + b"\n")
    pretty = tmp_path / "finding.json"
    pretty.write_bytes(orjson.dumps(config_event("COMPLIANT"), option=orjson.OPT_INDENT_2)[:-40])
    records = records_of(lines)
    assert [r.kind for r in records] == ["error", "alert"]
    assert records[0].origin == f"{lines}:1"
    [broken] = records_of(pretty)  # a cut pretty-printed document is one error, not one per line
    assert (broken.kind, broken.origin) == ("error", f"{pretty}:1")


def test_file_records_learn_pods_but_leave_assets_to_the_caller(mixed_folder):
    resolver = EntityResolver()
    traces = records_of(mixed_folder / "2-traces.jsonl", resolver)
    assets = records_of(mixed_folder / "1-assets.yaml", resolver)
    assert all(isinstance(r, Touch) for r in traces)
    assert resolver.service_of_pod(POD) == "service:payments-api"
    assert all(isinstance(r, Asset) for r in assets)
    assert resolver.resolve("ledger") is None


def test_missing_file_is_an_error_record(tmp_path):
    [record] = records_of(tmp_path / "nope.json")
    assert record.kind == "error"
    assert record.origin == str(tmp_path / "nope.json")
    assert "cannot read file" in record.reason


def test_records_sort_by_event_time_for_replay(mixed_folder):
    records = [r for path in sorted(mixed_folder.iterdir()) for r in records_of(path) if r.kind != "error"]
    finding = next(r for r in records if isinstance(r, Finding))
    assert finding.event_time == finding.observed_at.timestamp()
    assert sorted(records, key=lambda r: r.event_time)[0].kind == "asset"


def test_a_file_read_as_one_document_is_closed_before_its_records_are_decoded(mixed_folder):
    """So that a merge over many such files (one per trace batch) holds few of them open."""
    for name in ("3-traces.pb", "4-config.json"):
        opened = []
        records = iter_file_records(mixed_folder / name, EntityResolver(), load_settings(), on_open=opened.append)
        first = next(records)
        assert first.kind in {"touch", "finding"}
        assert [stream.closed for stream in opened] == [True]


def test_json_lines_stay_open_while_read_and_say_how_far_reading_got(mixed_folder):
    path = mixed_folder / "5-alerts.ndjson"
    opened = []
    records = iter_file_records(path, EntityResolver(), load_settings(), on_open=opened.append)
    next(records)
    [stream] = opened
    assert 0 < stream.tell() < path.stat().st_size
    list(records)
    assert stream.closed
