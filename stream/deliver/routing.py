"""Which sinks an escalation goes to, and the secrets they need.

Routing rules (each sink in ``HOTPATH_SINKS``), in this order; :func:`skip_reason` names the first
that keeps an event from a sink:

- ``routing`` (set by a policy route, issue 17), when the event carries it, must name the sink: a
  route picks which PagerDuty service, Opsgenie account or webhook receives the escalation. An event
  without it goes to every sink, as before policies. The sink's own rules below still apply.
- ``match_owner`` / ``match_environment``, when set, must equal the event's asset ``owner`` /
  ``environment``: this is how each team's services page their own PagerDuty service.
- ``escalated`` and ``updated`` events go to the sinks whose ``min_priority`` they reach (P1 is the
  highest; a P3 sink takes P1, P2 and P3).
- ``resolved`` and ``suppressed`` events (both close what a sink may have open) go to every sink
  whose owner/environment match, *whatever their priority*. A finding can have been triggered at P2
  and be resolved (or muted) at P4; the close must still reach the sink that paged. The rule needs no
  memory of what was sent, so it survives restarts and rebalances; the price is a close for a key a
  sink never saw, which PagerDuty drops, Opsgenie answers with "alert does not exist" after
  accepting, and a generic receiver should ignore.

Secrets (PagerDuty routing keys, Opsgenie GenieKeys, HMAC secrets) are read from the environment
variable ``secret_env`` or the file ``secret_file`` and kept in a :class:`Secret`, whose repr and
str are ``***``, so a secret cannot slip into a log line, a metric or a dead-letter record by
formatting; error messages name the variable or file, never the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from stream.correlate.lifecycle import PRIORITY_RANK
from stream.deliver.escalation import Escalation
from stream.deliver.http import REASON_MAX_CHARS
from stream.redact import mask, truncate
from stream.settings import ConfigError, SinkSettings

# Shorter tails of the secret are too likely to be ordinary text to be worth removing.
SECRET_FRAGMENT_MIN_CHARS = 4


class Secret:
    """A secret value that prints as ``***``; ``reveal()`` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        """``text`` fit to leave hotpath as a reason: the secret replaced by ``***``, masked, then cut.

        In this order, so the cut to ``REASON_MAX_CHARS`` can never leave part of the secret (or of a
        card number) behind. An answer read only in part can end in the start of the secret: that
        is removed too.
        """
        if self._value:
            text = text.replace(self._value, "***")
            for length in range(len(self._value) - 1, SECRET_FRAGMENT_MIN_CHARS - 1, -1):
                if text.endswith(self._value[:length]):
                    text = text[:-length] + "***"
                    break
        return truncate(mask(text), REASON_MAX_CHARS)

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("a Secret cannot be pickled")


def load_secret(sink: SinkSettings, environ: Mapping[str, str] = os.environ) -> Secret:
    """The sink's secret from its environment variable or file; ConfigError naming where it was looked for."""
    where = f"sink {sink.name!r}"
    if (sink.secret_env is None) == (sink.secret_file is None):
        raise ConfigError(f"HOTPATH_SINKS: {where} needs exactly one of secret_env or secret_file")
    if sink.secret_env is not None:
        value = environ.get(sink.secret_env, "")
        source = f"environment variable {sink.secret_env}"
    else:
        try:
            value = sink.secret_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"HOTPATH_SINKS: {where}: cannot read secret_file {sink.secret_file}: "
                              f"{exc.strerror}") from None
        source = f"secret_file {sink.secret_file}"
    value = value.strip()
    if not value:
        raise ConfigError(f"HOTPATH_SINKS: {where}: {source} is empty or unset")
    return Secret(value)


# Why a sink's lane passed an event by: the ``reason`` label of ``hotpath_deliver_skipped_total``.
NOT_ROUTED = "not_routed"
OWNER_MISMATCH = "owner_mismatch"
ENVIRONMENT_MISMATCH = "environment_mismatch"
BELOW_MIN_PRIORITY = "below_min_priority"
SKIP_REASONS = (NOT_ROUTED, OWNER_MISMATCH, ENVIRONMENT_MISMATCH, BELOW_MIN_PRIORITY)
# States that close what a sink has open, so they reach it whatever their priority.
CLOSING_STATES = frozenset({"resolved", "suppressed"})


def skip_reason(sink: SinkSettings, escalation: Escalation) -> str | None:
    """Why ``escalation`` does not go to ``sink`` (one of :data:`SKIP_REASONS`), or None when it does.

    A closing event (resolved, suppressed) reaches every sink whose owner and environment match, whatever
    its priority and its route: the route may have changed since the sink paged, and closing an incident
    a sink never opened is harmless, while leaving one open is not.
    """
    asset = escalation.asset
    if sink.match_owner is not None and asset.owner != sink.match_owner:
        return OWNER_MISMATCH
    if sink.match_environment is not None and asset.environment != sink.match_environment:
        return ENVIRONMENT_MISMATCH
    if escalation.state in CLOSING_STATES:
        return None
    if escalation.routing is not None and sink.name not in escalation.routing.sinks:
        return NOT_ROUTED
    return BELOW_MIN_PRIORITY if PRIORITY_RANK[escalation.priority] > PRIORITY_RANK[sink.min_priority] else None
