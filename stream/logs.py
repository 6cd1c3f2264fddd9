"""Structured logs: one JSON object per line on stderr, for the events that matter."""

from __future__ import annotations

import logging
import sys

import orjson

from stream.models import epoch_to_rfc3339

_STANDARD = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": epoch_to_rfc3339(record.created), "level": record.levelname.lower(),
                 "logger": record.name, "msg": record.getMessage()}
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Faust and aiokafka narrate every service start and stop at INFO; keep their warnings.
    for chatty in ("faust", "mode", "aiokafka"):
        logging.getLogger(chatty).setLevel(max(logging.getLevelName(level), logging.WARNING))
