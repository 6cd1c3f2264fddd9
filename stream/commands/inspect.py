"""``hotpath inspect FILE...``: show what hotpath makes of your data, one normalized record per line.

Each input becomes the records the pipeline would see (``to_record()`` as JSON, masked, one per
line). Input that cannot be decoded becomes ``{"kind": "error", "reason": ..., "origin": "FILE:LINE"}``;
inspect goes on with the rest and exits 1 when anything failed. Assets (``--asset-file``, or asset
entries among the inputs) and the pods traces name are learned as the files stream, so alerts later
in the run resolve pods to their services, as the worker would.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import orjson

from stream.entities.resolve import EntityResolver
from stream.ingest.files import ErrorRecord, files_under, iter_file_records
from stream.ingest.formats.assets import load_asset_file
from stream.models import Asset, DecodeError
from stream.redact import mask_fields
from stream.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="JSON, JSON lines, YAML asset files, OTLP JSON lines or protobuf; a folder for its files")
    parser.add_argument("--asset-file", type=Path, default=None,
                        help="asset context (YAML or JSON) whose aliases resolve names (default HOTPATH_ASSET_FILE)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    resolver = EntityResolver()
    asset_file = args.asset_file or settings.asset_file
    if asset_file is not None:
        try:
            for asset in load_asset_file(asset_file, settings.max_record_bytes, settings.max_json_depth):
                resolver.add_asset(asset)
        except DecodeError as exc:
            print(f"hotpath inspect: {exc.reason}", file=sys.stderr)
            return 2
    printed = failed = 0
    out = sys.stdout.buffer
    try:
        for path in files_under(args.files):
            for record in iter_file_records(path, resolver, settings):
                failed += isinstance(record, ErrorRecord)
                if isinstance(record, Asset):  # later records resolve against it, as in the worker
                    resolver.add_asset(record)
                out.write(orjson.dumps(mask_fields(record.to_record())) + b"\n")
                printed += 1
        out.flush()
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    print(f"hotpath inspect: {printed} records, {failed} failed", file=sys.stderr)
    return 1 if failed else 0
