"""``hotpath inspect`` reads any file without crashing: whatever it cannot decode is an error record.

Hypothesis writes hostile files seeded from the real samples (../shared/samples) and the SDK-encoded
OTLP messages of the decoder fuzz tests, laid out as inspect meets them in the wild: one document,
pretty-printed or not, with a byte-order mark, JSON lines mixing good and damaged records, arrays,
OTLP protobuf captures, YAML asset files, random bytes. Every record inspect yields must be a
normalized record or an error naming its file; lines over the record limit are skipped as errors.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from fuzzing import ALERTS, ASSETS, FINDINGS, damaged_bytes, deep_nesting, hostile, pick
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inputs import needs_samples
from otlp_messages import JSON_DOCUMENTS, damaged_proto
from paths import ROOT, SAMPLES

from stream.entities.resolve import EntityResolver
from stream.ingest.files import ErrorRecord, iter_file_records
from stream.settings import load_settings

MAX_RECORD_BYTES = 64 * 1024
SETTINGS = load_settings(max_record_bytes=MAX_RECORD_BYTES, max_spans_per_message=1000, max_attributes_per_span=64)
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
KINDS = {"finding", "alert", "asset", "touch", "error"}

OTLP_SAMPLE = SAMPLES / "otlp" / "otlp_json_trace.json"
TRACES = JSON_DOCUMENTS + ([orjson.loads(OTLP_SAMPLE.read_bytes())] if OTLP_SAMPLE.exists() else [])
DOCUMENTS = FINDINGS + ALERTS + ASSETS + TRACES


@st.composite
def json_lines(draw: st.DrawFn) -> bytes:
    """JSON lines mixing real records with damaged ones, blank lines and an occasional over-long line."""
    lines = draw(st.lists(st.one_of(
        pick(DOCUMENTS).map(orjson.dumps),
        hostile(DOCUMENTS).map(lambda raw: raw.replace(b"\n", b" ")),
        st.just(b""),
        st.integers(MAX_RECORD_BYTES, 2 * MAX_RECORD_BYTES).map(lambda size: b'{"x": "' + b"A" * size + b'"}'),
    ), min_size=1, max_size=6))
    return b"\n".join(lines) + draw(st.sampled_from([b"", b"\n"]))


def whole_documents() -> st.SearchStrategy[bytes]:
    """One document: as is, pretty-printed, behind a byte-order mark, or a damaged copy."""
    return st.one_of(
        pick(DOCUMENTS).map(lambda doc: orjson.dumps(doc, option=orjson.OPT_INDENT_2)),
        st.lists(pick(DOCUMENTS), min_size=1, max_size=4).map(orjson.dumps),
        pick(DOCUMENTS).map(lambda doc: b"\xef\xbb\xbf" + orjson.dumps(doc)),
        hostile(DOCUMENTS),
        damaged_bytes(DOCUMENTS),
        deep_nesting(),
    )


hostile_files = st.one_of(
    st.tuples(st.sampled_from([".json", ".ndjson"]), json_lines()),
    st.tuples(st.sampled_from([".json", ""]), whole_documents()),
    st.tuples(st.just(".pb"), damaged_proto()),
    st.tuples(st.sampled_from([".yaml", ".yml"]),
              st.one_of(st.binary(max_size=512), st.text(max_size=300).map(str.encode))),
    st.tuples(st.sampled_from(["", ".bin"]), st.binary(max_size=4096)),
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-inspect")


@needs_samples
@FUZZ
@given(hostile_files)
def test_inspect_file_reading_yields_only_records_and_errors(scratch, case):
    suffix, content = case
    path = scratch / f"input{suffix}"
    path.write_bytes(content)

    records = list(iter_file_records(path, EntityResolver(), SETTINGS))

    for record in records:
        assert record.kind in KINDS
        orjson.dumps(record.to_record())  # what inspect prints must serialize
        if isinstance(record, ErrorRecord):
            assert record.reason and record.origin.startswith(str(path))


@needs_samples
def test_the_command_reports_every_hostile_file_and_carries_on(tmp_path):
    """The real command over a folder of the worst cases: one error each, the good file still read."""
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "1-deep.json").write_bytes(b"[" * 5000 + b"]" * 5000)
    (folder / "2-nested-65.json").write_bytes(b'{"a":' * 65 + b"1" + b"}" * 65)
    (folder / "3-huge-line.ndjson").write_bytes(b'{"x": "' + b"A" * (2 * MAX_RECORD_BYTES) + b'"}\n')
    (folder / "4-cut.pb").write_bytes(b"\x0a\xff\xff\xff\x0f\x12")
    (folder / "5-junk.yaml").write_bytes(b"\x00\xff: [unclosed")
    (folder / "6-good.json").write_bytes((SAMPLES / "aws-securityhub-asff" / "asff_afsbp-s3.8.json").read_bytes())

    done = subprocess.run([sys.executable, "-m", "stream.commands.main", "inspect", str(folder)], capture_output=True,
                          cwd=ROOT, timeout=120, env={"PATH": "", "HOTPATH_MAX_RECORD_BYTES": str(MAX_RECORD_BYTES)})

    records = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    assert [(r["kind"], r["origin"].rsplit("/", 1)[-1]) for r in records if r["kind"] == "error"] == [
        ("error", f"{name}:1") for name in ("1-deep.json", "2-nested-65.json", "3-huge-line.ndjson", "4-cut.pb",
                                            "5-junk.yaml")]
    assert "nested too deeply (over 64 levels)" in records[1]["reason"]
    assert records[-1]["kind"] == "finding"
