"""How long a sink's lane waits before it sends a failed request again."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(retry: int, *, base_s: float, max_s: float, retry_after_s: float | None = None,
                  rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry number ``retry + 1``: full jitter over ``[0, min(max, base * 2**retry)]``.

    Never sooner than the server's ``Retry-After``, never longer than ``max_s`` (a server asking for
    more costs one more attempt of the budget instead of stalling the partition).
    """
    delay = rng() * min(max_s, base_s * 2.0 ** min(retry, 60))
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return min(delay, max_s)
