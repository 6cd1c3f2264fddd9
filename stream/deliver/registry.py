"""The sink kinds ``HOTPATH_SINKS`` can name, and the configured sinks made ready to send.

Adding a sink is a module with a ``SINK`` (:class:`stream.deliver.sink.SinkKind`) and its line in
:data:`SINK_KINDS`; the kind's name also goes into ``SinkSettings.kind``, the settings' list of the
kinds a configuration may name (checked against this one by the tests).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from stream.deliver import opsgenie, pagerduty, webhook
from stream.deliver.routing import load_secret
from stream.deliver.sink import SinkClient, SinkKind
from stream.settings import ConfigError, Settings, SinkSettings

SINK_KINDS: dict[str, SinkKind] = {kind.name: kind for kind in (pagerduty.SINK, opsgenie.SINK, webhook.SINK)}


def check_sinks(sinks: Iterable[SinkSettings]) -> None:
    """Refuse configurations that could only fail at delivery time: duplicate names, a sink without a URL."""
    seen: set[str] = set()
    for sink in sinks:
        if sink.name in seen:
            raise ConfigError(f"HOTPATH_SINKS: two sinks are named {sink.name!r}; names key the metrics and logs")
        seen.add(sink.name)
        if SINK_KINDS[sink.kind].default_url is None and not sink.url:
            raise ConfigError(f"HOTPATH_SINKS: {sink.kind} sink {sink.name!r} needs a url")


def sink_clients(settings: Settings, environ: Mapping[str, str] = os.environ) -> list[SinkClient]:
    """The configured sinks with their secrets loaded; ConfigError for a bad or incomplete one."""
    check_sinks(settings.sinks)
    return [SinkClient(sink, load_secret(sink, environ), SINK_KINDS[sink.kind], settings.trace_url_template)
            for sink in settings.sinks]
