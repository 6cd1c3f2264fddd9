"""hotpath.policy's records: a version is applied only once all of its files have arrived, and it names the
same version as the same files given to replay (HOTPATH_POLICY_FILES, --policy)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from policy_events import EXPORTS_MUTED, IAM_MUTELIST, NOTHING_MUTED, policy_file

from stream.policy.document import load_policy
from stream.policy.published import MAX_RECORD_BYTES, PublishedPolicy, publication

AT = datetime(2026, 12, 4, tzinfo=UTC)


def version_of(tmp_path, texts: dict[str, str]) -> str:
    return load_policy([policy_file(tmp_path, name, text) for name, text in texts.items()]).digest


def test_a_version_applies_once_every_file_of_it_is_read_and_names_the_files_digest(tmp_path):
    texts = {"payments.yaml": EXPORTS_MUTED, "iam.yaml": IAM_MUTELIST}
    version = version_of(tmp_path, texts)
    records = publication(texts, version, "alice", AT)
    state = PublishedPolicy()

    state.apply(*records[0])
    assert state.current() is None  # half of a publication is not a version

    state.apply(*records[1])
    current = state.current()
    assert (current.version, current.texts) == (version, texts)
    assert current.compile().digest == version


def test_while_the_next_version_arrives_the_one_in_force_is_not_replaced_by_a_mix(tmp_path):
    first = {"payments.yaml": EXPORTS_MUTED, "iam.yaml": IAM_MUTELIST}
    second = {"payments.yaml": NOTHING_MUTED, "dev.yaml": "version: 1\n"}
    state = PublishedPolicy()
    for record in publication(first, version_of(tmp_path, first), "alice", AT):
        state.apply(*record)
    (tmp_path / "next").mkdir()
    new_records = publication(second, version_of(tmp_path / "next", second), "bob", AT, dropped=list(state.files))

    state.apply(*new_records[0])  # payments.yaml of the second version, dev.yaml not yet
    assert state.current() is None

    for record in new_records[1:]:
        state.apply(*record)
    assert state.current().texts == second
    assert "iam.yaml" not in state.files  # its tombstone


def test_a_file_too_large_for_one_record_is_refused_before_anything_is_sent():
    with pytest.raises(ValueError, match="big.yaml: too large to publish"):
        publication({"big.yaml": "version: 1\n" + "#" * MAX_RECORD_BYTES}, "0" * 64, "alice", AT)


def test_a_record_that_is_not_a_published_file_is_refused():
    with pytest.raises(ValueError):
        PublishedPolicy().apply(b"payments.yaml", b'{"text": "version: 1", "version": "not a digest"}')
