"""Everything downstream of ``hotpath.escalations``: the OCSF SIEM feed and the incident webhooks.

``escalation`` reads and validates the event; ``ocsf`` turns it into an OCSF Detection Finding;
``pagerduty``, ``opsgenie`` and ``webhook`` are the sinks, each registering its kind
(``sink.SinkKind``: how it builds its requests from an event and reads the answers) in
``registry``; ``http`` classifies the answers every sink gets; ``routing`` decides which sinks an
event goes to and loads their secrets. ``service`` is the ``hotpath deliver`` service that ties
them to Kafka with at-least-once semantics: a ``lane`` per consumer group, ``backoff`` between
retries, its ``metrics`` and its ``ops`` web server. The command is ``stream.commands.deliver``.
"""
