"""HeldWrites: an entity's new state reaches the table (and its changelog) only once released.

The worker releases after the escalations a state records are acknowledged, and discards an entity's
write when its escalation could not be sent; a crash in between must find the table as it was.
"""

from __future__ import annotations

from stream.correlate.recovery import HeldWrites

BUCKET = "arn:aws:s3:::acme-statements"
VAULT = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:vault"


class Changelog(dict):
    """A table that remembers each write, as the changelog topic behind the worker's table would."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.writes: list[str] = []

    def __setitem__(self, key: str, value: dict) -> None:
        self.writes.append(key)
        super().__setitem__(key, value)


def test_writes_wait_for_release_and_then_reach_the_table_once():
    table = Changelog({BUCKET: {"version": 1}})
    store = HeldWrites(table)

    store[BUCKET] = {"version": 2}
    store[VAULT] = {"version": 1}

    assert table == {BUCKET: {"version": 1}} and table.writes == [], "a held write reached the table before its release"
    store.release()
    assert table == {BUCKET: {"version": 2}, VAULT: {"version": 1}}
    store.release()  # nothing held any more
    assert table.writes == [BUCKET, VAULT], "a released write was written again"


def test_reads_see_the_held_values_before_the_table():
    store = HeldWrites({BUCKET: {"version": 1}, VAULT: {"version": 1}})

    store[BUCKET] = {"version": 2}

    assert store[BUCKET] == {"version": 2} and store.get(BUCKET) == {"version": 2}
    assert store[VAULT] == {"version": 1} and store.get("unknown", "absent") == "absent"
    assert sorted(store) == [BUCKET, VAULT] and len(store) == 2
    assert dict(store.items()) == {BUCKET: {"version": 2}, VAULT: {"version": 1}}


def test_discard_drops_only_that_entitys_write():
    table = {BUCKET: {"version": 1}}
    store = HeldWrites(table)
    store[BUCKET] = {"version": 2}
    store[VAULT] = {"version": 1}

    store.discard(BUCKET)

    assert store[BUCKET] == {"version": 1}, "the discarded write is still read"
    store.release()
    assert table == {BUCKET: {"version": 1}, VAULT: {"version": 1}}


def test_a_deletion_goes_straight_to_the_table_and_forgets_a_held_write():
    table = {BUCKET: {"version": 1}, VAULT: {"version": 1}}
    store = HeldWrites(table)
    store[BUCKET] = {"version": 2}

    del store[BUCKET]
    del store[VAULT]

    assert table == {} and BUCKET not in store
    store.release()
    assert table == {}, "a deleted entity came back on release"
