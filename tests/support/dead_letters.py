"""Reading and checking what lands on the dead-letter topic."""

from __future__ import annotations

import jsonschema
import orjson
from paths import SCHEMAS
from workers import read_topic


def dead_letters_of(settings, keys: set[bytes]) -> dict[bytes, dict]:
    """The dead-letter records of the records produced with ``keys``, waiting until all are there."""
    found = read_topic(settings, settings.topic_dlq, until=lambda records: keys <= {key for key, _ in records},
                       timeout=90)
    return {key: value for key, value in found if key in keys}


SCHEMA = orjson.loads((SCHEMAS / "dlq.schema.json").read_bytes())


VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
