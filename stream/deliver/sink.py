"""What a sink is to the deliver service: the kind a sink module registers, and a configured sink.

A sink module (:mod:`stream.deliver.pagerduty`, ``opsgenie``, ``webhook``) describes its kind in a
:class:`SinkKind` named ``SINK``: the name ``HOTPATH_SINKS`` uses, how it turns an escalation into
the requests to send, how it reads an answer, and the URL it sends to when the sink's ``url`` is not
set. :mod:`stream.deliver.registry` lists the kinds and makes a :class:`SinkClient` of each
configured sink.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from stream.deliver.escalation import Escalation
from stream.deliver.http import HttpRequest, Outcome
from stream.deliver.routing import Secret
from stream.settings import SinkSettings

Classify = Callable[[int, Mapping[str, str], bytes, float], Outcome]


class BuildRequests(Protocol):
    def __call__(self, escalation: Escalation, sink: SinkSettings, secret: Secret, *, now: float,
                 trace_url_template: str) -> list[HttpRequest]:
        """The requests of one event, to be sent in this order (``now``: when they are sent)."""


@dataclass(frozen=True)
class SinkKind:
    """One kind of sink, as its module registers it."""

    name: str
    build: BuildRequests
    classify: Classify
    default_url: str | None  # None: every sink of this kind must set its url


@dataclass(frozen=True)
class SinkClient:
    """One configured sink, ready to send: its settings, secret, kind and the trace UI's URL template."""

    settings: SinkSettings
    secret: Secret
    kind: SinkKind
    trace_url_template: str

    @property
    def name(self) -> str:
        return self.settings.name

    def build(self, escalation: Escalation, now: float) -> list[HttpRequest]:
        """The requests of one event, sent in order; built again per attempt, as signatures carry the time."""
        return self.kind.build(escalation, self.settings, self.secret, now=now,
                               trace_url_template=self.trace_url_template)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes, now: float) -> Outcome:
        return self.kind.classify(status, headers, body, now)
