"""``hotpath policy``: check policy files, and print the policy file's JSON Schema.

``hotpath policy check FILE...`` prints every problem as ``FILE:LINE: message`` and exits 1, or a
one-line summary per file and exits 0. ``hotpath policy schema`` prints the JSON Schema of hotpath's
policy file, generated from its model (topics/schemas/policy.schema.json is this output).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from stream.policy.check import check_files
from stream.policy.rules import PolicyDocument
from stream.settings import Settings

SCHEMA_ID = "https://hotpath.dev/schemas/policy.schema.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate policy files (Prowler mutelists or hotpath policies)",
                               description="validate policy files (Prowler mutelists or hotpath policies)")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE", help="a policy file")
    actions.add_parser("schema", help="print the JSON Schema of hotpath's policy file",
                       description="print the JSON Schema of hotpath's policy file")


def policy_schema_text() -> str:
    """The JSON Schema of hotpath's policy file, as topics/schemas/policy.schema.json holds it."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
              **PolicyDocument.model_json_schema()}
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "schema":
        sys.stdout.write(policy_schema_text())
        return 0
    lines, valid = check_files(args.files, datetime.now(UTC).date())
    for line in lines:
        print(line)
    return 0 if valid else 1
