"""The ``entity-state`` table as the correlator's store."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson


class EntityTable(MutableMapping):
    """The ``entity-state`` table, written outside the context of one event, holding serialized states.

    Faust sends a table write to the changelog partition of the event being processed; the correlate
    agent writes once per chunk of records from several partitions, so each state goes to the
    partition of its own entity's events instead (``state["p"]``), which is where Faust would send it.

    States are kept as their JSON bytes (the changelog's own encoding), not as dicts: an entity's
    nested dicts and lists take about six times the memory of its JSON, and an idle entity is
    only read on a tick or a sweep. The correlator reads each state once per chunk (held writes
    keep the decoded dict until the chunk is written), so decoding costs microseconds per entity.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        return orjson.loads(self.table.data[key])

    def __setitem__(self, key: str, value: Any) -> None:
        # orjson returns its bytes in a 4 KiB buffer whatever the length: keep an exact copy instead.
        encoded = self.table.data[key] = bytes(memoryview(orjson.dumps(value)))
        self.table.send_changelog(value["p"], key, encoded)

    def __delitem__(self, key: str) -> None:
        partition = self[key]["p"]
        del self.table.data[key]
        self.table.send_changelog(partition, key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.table.data)

    def __len__(self) -> int:
        return len(self.table.data)
