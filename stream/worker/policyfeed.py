"""Reads ``hotpath.policy`` in full, so every worker judges by the same, latest published policy.

The feed follows the topic from the beginning (:class:`stream.worker.topicfeed.TopicFeed`); once the
files of a new version have all arrived (:class:`stream.policy.published.PublishedPolicy`) it compiles
them, on the event loop's thread, into ``pending``; the worker's correlate agent takes it between chunks
and hands it to the engine (which re-judges its findings then, inside the stream, where table writes
belong), so a change applies without a restart.

The rule with ``HOTPATH_POLICY_FILES``: the files are the policy a worker starts with; as soon as the topic
holds a complete version, that version replaces them, and every later version replaces the one before.

A version that does not compile (a file that is not valid, or files that do not hash to the version they
name) is logged with the file and line of each problem and skipped: the version in force stays.
"""

from __future__ import annotations

from prometheus_client import Counter

from stream.policy.check import problem_line
from stream.policy.document import PolicyFileError
from stream.policy.published import PublishedPolicy
from stream.policy.rules import Policy
from stream.settings import Settings
from stream.worker.topicfeed import TopicFeed


class PolicyFeed(TopicFeed):
    name = "policy"

    def __init__(self, settings: Settings, records: Counter) -> None:
        super().__init__(settings, (settings.topic_policy,), records)
        self.published = PublishedPolicy()
        self.pending: Policy | None = None
        """The newest version read and not yet taken by the engine."""
        self.version: str | None = None
        """The topic's version last handed on; None until the topic holds one."""
        self.refused: str | None = None
        """The last version that could not be applied."""

    def _apply_record(self, topic: str, key: bytes | None, value: bytes | None) -> bool:
        self.published.apply(key, value)
        return True

    def _applied_batch(self) -> None:
        candidate = self.published.current()
        if candidate is None or candidate.version in (self.version, self.refused):
            return
        short = candidate.version[:12]
        try:
            policy = candidate.compile()
        except PolicyFileError as exc:
            self.refused = candidate.version
            for problem in exc.problems:
                self.log.error("policy version %s not applied, %s kept: %s", short, self._kept(),
                               problem_line(problem))
            return
        if policy.digest != candidate.version:
            self.refused = candidate.version
            self.log.error("policy version %s not applied, %s kept: its files hash to %s", short, self._kept(),
                           policy.digest[:12])
            return
        self.version = candidate.version
        self.log.info("policy version %s (%s) read from %s", short, ", ".join(candidate.texts), self.topics[0])
        self.pending = policy

    def take(self) -> Policy | None:
        """The version to apply now, once; None when there is no new one."""
        policy, self.pending = self.pending, None
        return policy

    def _kept(self) -> str:
        return f"version {self.version[:12]}" if self.version else "the starting policy"
