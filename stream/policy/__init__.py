"""Policy as code: which findings are muted, re-prioritised and routed where.

Two kinds of file, told apart by content: a Prowler mutelist (top-level ``Mutelist``), read unchanged
and matched as Prowler matches it, and hotpath's own policy file (top-level ``version``) with mute
rules that expire, priority and severity overrides, and routes. :func:`stream.policy.document.load_policy`
reads them into one :class:`stream.policy.rules.Policy`, whose ``decide`` is a pure function of a
finding's facts and a time.
"""
