"""The ``entity-state`` table as the correlator's store."""

from __future__ import annotations

from typing import Any

from stream.correlate.state import EncodedStates, EntityState
from stream.jsonsafe import dumps_kept


class EntityTable(EncodedStates):
    """The ``entity-state`` table, written outside the context of one event, holding serialized states.

    Faust sends a table write to the changelog partition of the event being processed; the correlate
    agent writes once per chunk of records from several partitions, so each state goes to the
    partition of its own entity's events instead (``state.partition``), which is where Faust
    would send it.

    States are kept encoded (:mod:`stream.correlate.state`, the changelog's own encoding), not decoded:
    an entity's nested objects take several times the memory of its encoding, and an idle entity is
    only read on a tick or a sweep. The correlator reads each state once per chunk (held writes
    keep the decoded state until the chunk is written), so decoding costs microseconds per entity.

    Keys go to the changelog already encoded (:func:`changelog_key`): Faust's JSON codec would leave each
    write waiting in the producer's buffer holding a 4 KB key.
    """

    def __init__(self, table: Any) -> None:
        super().__init__(table.data)
        self.table = table

    def __setitem__(self, key: str, value: EntityState) -> None:
        super().__setitem__(key, value)
        self.table.send_changelog(value.partition, changelog_key(key), self.data[key])

    def __delitem__(self, key: str) -> None:
        partition = self[key].partition
        super().__delitem__(key)
        self.table.send_changelog(partition, changelog_key(key), None)


def changelog_key(key: str) -> bytes:
    """The key as the table's JSON key serializer writes it (Faust passes bytes through), in a bytes object of
    its own size: a chunk's thousands of changelog writes wait in the producer's buffer, and with Faust's codec
    (orjson) each held a 4 KB allocation."""
    return dumps_kept(key)
