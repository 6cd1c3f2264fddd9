"""Reading exported files: every format hotpath accepts, decoded lazily into normalized records.

Each input becomes the records the pipeline would see: findings, alerts, assets, and a ``touch``
per entity an OTLP message reaches. Input that cannot be decoded becomes an :class:`ErrorRecord`
naming its ``FILE:LINE``, and reading goes on with the rest. ``hotpath inspect`` prints these
records; ``hotpath replay`` merges them in event-time order (:mod:`stream.ingest.merge`).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from stream.entities.resolve import EntityResolver
from stream.ingest.formats.alerts import alerts_from_document, is_alert_document
from stream.ingest.formats.assets import assets_from_document, is_asset_document, load_asset_file
from stream.ingest.formats.findings import findings_from_document, is_finding_document
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.formats.otlp import OtlpDecoder
from stream.jsonsafe import loads
from stream.models import Alert, Asset, DecodeError, Finding, Touch
from stream.settings import Settings

_YAML_SUFFIXES = {".yaml", ".yml"}
_SNIFF_BYTES = 4096
_SKIP_CHUNK = 1 << 20
_TEXT_CONTROLS = {9, 10, 13}
_OTLP_JSON_LINE = b'{"resourceSpans"'
_UNKNOWN = (
    "unknown format: not a finding (Prowler OCSF, Security Hub ASFF/OCSF, AWS Config), an alert "
    "(Falco, GuardDuty), an asset entry or an OTLP traces document"
)


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """Input that could not be decoded: why, and where (``FILE:LINE``, ``FILE:LINE[INDEX]`` in an array)."""

    reason: str
    origin: str

    kind = "error"

    def to_record(self) -> dict[str, Any]:
        return {"kind": "error", "reason": self.reason, "origin": self.origin}


FileRecord = Finding | Alert | Asset | Touch | ErrorRecord


def iter_file_records(path: str | Path, resolver: EntityResolver, settings: Settings, *,
                      on_open: Callable[[IO[bytes]], None] | None = None) -> Iterator[FileRecord]:
    """Decode a file lazily into normalized records (findings, alerts, assets, touches) and errors.

    Recognised per file: YAML asset files (``.yaml``/``.yml``); JSON, either one document (an object
    or an array, pretty-printed or not) or JSON lines (NDJSON, read line by line, so large files
    stream); binary OTLP protobuf (anything that is not UTF-8 text: the whole file is one
    ``ExportTraceServiceRequest``). Per document or line (and per item of an array), the format is
    detected: OTLP JSON (``resourceSpans``, e.g. the Collector's file exporter, one request per
    line), findings, alerts or asset entries. Every record is checked against the settings' limits.

    ``resolver`` resolves alerts and traces, and learns the pod-to-service facts traces carry as they
    are decoded (a :class:`~stream.models.Touch` cannot carry them), so alerts read after the traces
    resolve pods to services. Assets are yielded, not added: the caller decides when they apply.
    Every record has ``kind``: "finding", "alert", "asset", "touch" or "error". ``on_open`` is
    given the file once it is open, so that a caller can follow how far reading got (``tell()``).
    A file read as one document is closed before its records are decoded, so that a merge over
    many such files holds few of them open.
    """
    path = Path(path)
    limits = DecodeLimits.from_settings(settings)
    decoder = _Decoder(resolver, settings, limits)
    try:
        if path.suffix.lower() in _YAML_SUFFIXES:
            yield from decoder.yaml_assets(path)
            return
        with path.open("rb") as stream:
            if on_open is not None:
                on_open(stream)
            head = stream.read(_SNIFF_BYTES).lstrip(b"\xef\xbb\xbf \t\r\n")
            stream.seek(0)
            if not head:
                return
            if head[:1] == b"{":
                yield from decoder.json_object_file(path, stream)
            elif head[:1] == b"[":
                yield from decoder.whole_document(path, stream)
            elif _is_binary(head):
                yield from decoder.otlp_proto(path, stream)
            else:
                yield ErrorRecord("not JSON, a YAML asset file (.yaml/.yml) or binary OTLP protobuf", f"{path}:1")
    except OSError as exc:
        yield ErrorRecord(f"cannot read file: {exc.strerror or exc}", str(path))


def _is_binary(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 3  # a character cut by the sniff window is still text
    return any(ord(char) < 32 and ord(char) not in _TEXT_CONTROLS for char in text)


class _Decoder:
    """The per-file decoding steps, sharing the resolver and the limits."""

    def __init__(self, resolver: EntityResolver, settings: Settings, limits: DecodeLimits) -> None:
        self.resolver = resolver
        self.max_bytes = settings.max_record_bytes
        self.max_depth = settings.max_json_depth
        self.limits = limits
        self.traces = OtlpDecoder(resolver, limits)  # one per reader: its caches carry over between messages

    def yaml_assets(self, path: Path) -> Iterator[FileRecord]:
        try:
            yield from load_asset_file(path, self.max_bytes, self.max_depth)
        except DecodeError as exc:
            yield ErrorRecord(exc.reason, f"{path}:1")

    def json_object_file(self, path: Path, stream: IO[bytes]) -> Iterator[FileRecord]:
        """JSON lines when one of the first two lines is a whole JSON value, else one (pretty-printed)
        document. Two, so that JSON lines whose first line is broken are still read line by line."""
        filled = (line for _, line in _lines(stream, self.max_bytes) if line is None or line.strip())
        opening = list(itertools.islice(filled, 2))
        stream.seek(0)
        if not any(line is not None and self._is_value(line) for line in opening):
            yield from self.whole_document(path, stream)
            return
        for number, line in _lines(stream, self.max_bytes):
            origin = f"{path}:{number}"
            if line is None:
                yield ErrorRecord(f"line is over the {self.max_bytes}-byte limit (HOTPATH_MAX_RECORD_BYTES)", origin)
            elif line.startswith(_OTLP_JSON_LINE):
                yield from self._guarded(origin, lambda line=line: self._traces(line, "otlp_json"))
            elif line.strip():
                yield from self.document(line, origin)

    def _is_value(self, line: bytes) -> bool:
        if line.startswith(_OTLP_JSON_LINE):  # no need to parse a large OTLP line twice
            return True
        try:
            loads(line, self.max_bytes, self.max_depth)
        except DecodeError:
            return False
        return True

    def whole_document(self, path: Path, stream: IO[bytes]) -> Iterator[FileRecord]:
        size = os.fstat(stream.fileno()).st_size
        if size > self.max_bytes:
            yield ErrorRecord(
                f"document is {size} bytes, over the {self.max_bytes}-byte limit (HOTPATH_MAX_RECORD_BYTES)",
                f"{path}:1",
            )
            return
        data = stream.read()
        stream.close()
        yield from self.document(data, f"{path}:1")

    def otlp_proto(self, path: Path, stream: IO[bytes]) -> Iterator[FileRecord]:
        size = os.fstat(stream.fileno()).st_size
        if size > self.limits.max_record_bytes:
            yield ErrorRecord(
                f"OTLP protobuf file is {size} bytes, over the {self.limits.max_record_bytes}-byte limit "
                "(HOTPATH_MAX_RECORD_BYTES)",
                f"{path}:1",
            )
            return
        data = stream.read()
        stream.close()
        yield from self._guarded(f"{path}:1", lambda: self._traces(data, "otlp_proto"))

    def document(self, raw: bytes, origin: str) -> Iterator[FileRecord]:
        """One JSON document: an array is decoded item by item, so one bad item spoils only itself."""
        try:
            value = loads(raw, self.max_bytes, self.max_depth)
        except DecodeError as exc:
            yield ErrorRecord(exc.reason, origin)
            return
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from self.item(item, None, f"{origin}[{index}]")
        else:
            yield from self.item(value, raw, origin)

    def item(self, value: Any, raw: bytes | None, origin: str) -> Iterator[FileRecord]:
        if isinstance(value, dict) and "resourceSpans" in value:
            encoded = raw if raw is not None else orjson.dumps(value)
            yield from self._guarded(origin, lambda: self._traces(encoded, "otlp_json"))
        elif is_finding_document(value):
            yield from self._guarded(origin, lambda: findings_from_document(value))
        elif is_alert_document(value):
            yield from self._guarded(origin, lambda: alerts_from_document(value, self.resolver))
        elif is_asset_document(value):
            yield from self._guarded(origin, lambda: assets_from_document(value))
        else:
            event = value.get("detail-type") if isinstance(value, dict) else None
            reason = f"EventBridge event detail-type {str(event)[:60]!r} is not supported" if event else _UNKNOWN
            yield ErrorRecord(reason, origin)

    def _traces(self, value: bytes, encoding: str) -> list[Touch]:
        batch = self.traces.decode(value, encoding)  # type: ignore[arg-type]
        for pod, service in batch.pods.items():
            self.resolver.learn_pod(pod, service)
        return batch.touches

    @staticmethod
    def _guarded(origin: str, decode: Callable[[], Iterable[FileRecord]]) -> Iterator[FileRecord]:
        try:
            records = decode()
        except DecodeError as exc:
            yield ErrorRecord(exc.reason, origin)
            return
        yield from records


def _lines(stream: IO[bytes], limit: int) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, line)``; ``None`` for a line over ``limit`` bytes, skipped a chunk at a time so
    that it is never held in memory whole."""
    number = 0
    while line := stream.readline(limit + 1):
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = stream.readline(_SKIP_CHUNK)
            yield number, None
        else:
            yield number, line


def files_under(paths: Iterable[str]) -> Iterator[Path]:
    """The files named, a folder standing for the files under it (sorted, hidden ones skipped)."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(
                found for found in path.rglob("*")
                if found.is_file() and not any(part.startswith(".") for part in found.relative_to(path).parts)
            )
        else:
            yield path
