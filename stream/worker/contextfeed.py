"""Reads the shared context topics in full (``hotpath.context``, ``hotpath.assets``) into a Context.

Every worker needs every asset and every learned fact, whatever partitions of the entity stream it
owns: :class:`stream.worker.topicfeed.TopicFeed` reads them on a thread and applies each batch on the
event loop. A record that cannot be applied (a non-UTF-8 key, a malformed fact) costs that record.
"""

from __future__ import annotations

import orjson
from prometheus_client import Counter

from stream.entities.context import Context
from stream.ingest.formats.assets import decode_assets
from stream.ingest.router import Router
from stream.models import DecodeError
from stream.settings import Settings
from stream.worker.topicfeed import TopicFeed


class ContextFeed(TopicFeed):
    name = "context"

    def __init__(self, settings: Settings, context: Context, records: Counter, router: Router | None = None) -> None:
        super().__init__(settings, (settings.topic_context, settings.topic_assets), records)
        self.context = context
        self.router = router  # told of each fact read, so that it does not publish what another worker did

    def _apply_record(self, topic: str, key: bytes | None, value: bytes | None) -> bool:
        """Apply one record; False for one the context has no use for (no key, a fact tombstone)."""
        if key is None:
            return False
        if value is None:
            if topic == self.settings.topic_assets:
                self.context.resolver.remove_asset(key.decode())
                return True
            return False
        if topic == self.settings.topic_assets:
            try:
                assets = decode_assets(value, self.settings.max_record_bytes, self.settings.max_json_depth)
            except DecodeError:
                return False  # the ingest agent dead-letters bad asset records
            for asset in assets:
                self.context.add_asset(asset)
        else:
            fact_key, fact = key.decode(), orjson.loads(value)
            self.context.apply(fact_key, fact)
            if self.router is not None and isinstance(fact, dict):
                self.router.heard(fact_key, fact)
        return True
