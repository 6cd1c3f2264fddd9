"""The policy as ``hotpath.policy`` holds it: one compacted record per policy file, keyed by the file's name.

``hotpath policy publish`` writes every file of a new version, then a tombstone for each file the version
dropped. Each record names its version (the :attr:`stream.policy.rules.Policy.digest` of all its files) and
the version's files in order, so a reader applies a version only once every one of its files has arrived:
a worker reading mid-publication keeps the version it has rather than apply half of the next one.
:class:`PublishedPolicy` is that reader's state, fed one record at a time, with no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from stream.models import rfc3339
from stream.policy.document import MAX_FILE_BYTES, PolicyFile, compile_policy, read_policy_bytes
from stream.policy.rules import Policy

TOPIC_SOURCE = "hotpath.policy"
"""What escalations name as the source of a rule the worker read from the topic."""
MAX_FILES = 100
MAX_RECORD_BYTES = 900 * 1024
"""A record must fit the broker's 1 MB message limit, with the JSON escaping of the text."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^/\\\x00-\x1f]+$")]
Digest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class PublishedFile(BaseModel):
    """The value of one record of hotpath.policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(max_length=MAX_FILE_BYTES)
    version: Digest
    sources: list[Name] = Field(min_length=1, max_length=MAX_FILES)
    published_by: str = Field(max_length=255)
    published_at: str = Field(max_length=64)


@dataclass(frozen=True)
class PolicyVersion:
    """A complete version: its digest and each file's name and text, in the order they apply."""

    version: str
    texts: dict[str, str]

    def compile(self) -> Policy:
        """The Policy, or PolicyFileError naming the first file that is not valid."""
        return compile_policy(parse(self.texts), source=TOPIC_SOURCE)


def parse(texts: dict[str, str]) -> list[PolicyFile]:
    return [read_policy_bytes(name, text.encode()) for name, text in texts.items()]


def publication(texts: dict[str, str], version: str, by: str, at: datetime,
                dropped: Sequence[str] = ()) -> list[tuple[bytes, bytes | None]]:
    """The records that publish a version: each file, then a tombstone for each file it no longer has.

    ValueError when a file would not fit one record.
    """
    records: list[tuple[bytes, bytes | None]] = []
    for name, text in texts.items():
        value = orjson.dumps(PublishedFile(text=text, version=version, sources=list(texts), published_by=by,
                                           published_at=rfc3339(at)).model_dump())
        if len(value) > MAX_RECORD_BYTES:
            raise ValueError(f"{name}: too large to publish ({len(value)} bytes as a record, at most "
                             f"{MAX_RECORD_BYTES})")
        records.append((name.encode(), value))
    return records + [(name.encode(), None) for name in dropped if name not in texts]


class PublishedPolicy:
    """The latest record of each file read from hotpath.policy, and the newest version they complete."""

    def __init__(self) -> None:
        self.files: dict[str, PublishedFile] = {}
        self._latest: PublishedFile | None = None

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record, in the topic's order; ValueError (pydantic's included) for a record that is not one."""
        if key is None:
            raise ValueError("a record without a key names no policy file")
        name = key.decode()
        self.files.pop(name, None)
        if value is not None:
            self.files[name] = self._latest = PublishedFile.model_validate_json(value)

    def current(self) -> PolicyVersion | None:
        """The version of the last file read, once all of its files are here at that version; else None."""
        latest = self._latest
        if latest is None or any(name not in self.files or self.files[name].version != latest.version
                                 for name in latest.sources):
            return None
        return PolicyVersion(latest.version, {name: self.files[name].text for name in latest.sources})
