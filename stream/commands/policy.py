"""``hotpath policy``: check, publish and explain policy files, and print the policy file's JSON Schema.

``hotpath policy check FILE...`` prints every problem as ``FILE:LINE: message`` and exits 1, or a
one-line summary per file and exits 0. ``hotpath policy publish FILE... [--by NAME]`` checks the files
the same way, then makes them the policy on ``hotpath.policy`` (every worker applies it without a
restart) and records who published it, with a diff against the version before, on ``hotpath.audit``.
``hotpath policy explain FILE... --findings ...`` replays the inputs without and with the files and
prints what they change for each finding, before anyone publishes them. ``hotpath policy schema``
prints the JSON Schema of hotpath's policy file, generated from its model
(topics/schemas/policy.schema.json is this output).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

from stream.commands.replay import add_input_arguments, missing_inputs
from stream.policy.check import check_files
from stream.policy.rules import PolicyDocument
from stream.redact import mask, mask_cut
from stream.settings import Settings

SCHEMA_ID = "https://hotpath.dev/schemas/policy.schema.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate policy files (Prowler mutelists or hotpath policies)",
                               description="validate policy files (Prowler mutelists or hotpath policies)")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE", help="a policy file")
    publish = actions.add_parser("publish", help="make the files the policy every worker applies (hotpath.policy)",
                                 description="check the files, publish them as the new policy version on "
                                             "hotpath.policy and record it on hotpath.audit")
    publish.add_argument("files", nargs="+", type=Path, metavar="FILE",
                         help="a policy file; the files given replace the whole published policy")
    publish.add_argument("--by", help="who publishes (default: the user running the command)")
    explain = actions.add_parser("explain", help="show what policy files change for the findings of replay inputs",
                                 description="replay the inputs without and with the policy files and print, "
                                             "per finding, what the policy changes")
    explain.add_argument("files", nargs="+", type=Path, metavar="FILE", help="a policy file")
    add_input_arguments(explain)
    actions.add_parser("schema", help="print the JSON Schema of hotpath's policy file",
                       description="print the JSON Schema of hotpath's policy file")


def policy_schema_text() -> str:
    """The JSON Schema of hotpath's policy file, as topics/schemas/policy.schema.json holds it."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
              **PolicyDocument.model_json_schema()}
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "schema":
        sys.stdout.write(policy_schema_text())
        return 0
    lines, valid = check_files(args.files, datetime.now(UTC).date())
    for line in lines:
        print(line, file=sys.stderr if args.action == "explain" else sys.stdout)
    if not valid:
        return 1
    if args.action == "publish":
        return publish(settings, args.files, args.by or _user())
    if args.action == "explain":
        return explain(settings, args)
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no USER in the environment
        return "unknown"


def publish(settings: Settings, paths: list[Path], by: str) -> int:
    """Publish the files as the policy's new version, then its audit record; exit status 1 on a failure."""
    from stream.kafka.topics import BrokerAdmin, TopicsError
    from stream.policy.audit import MAX_BY_CHARS, published_record
    from stream.policy.document import compile_policy, read_policy_bytes
    from stream.policy.published import publication
    from stream.sources.aws.publish import PublishError, TopicSink

    by = mask_cut(by, MAX_BY_CHARS)
    names = [path.name for path in paths]
    if len(set(names)) < len(names):
        print("hotpath policy publish: two files have the same name; the topic keeps one record per name",
              file=sys.stderr)
        return 1
    # Read once: the version is the digest of exactly the bytes published (a CRLF file stays CRLF).
    contents = [path.read_bytes() for path in paths]
    version = compile_policy([read_policy_bytes(str(path), raw) for path, raw in zip(paths, contents, strict=True)]
                             ).digest
    texts = {name: raw.decode("utf-8") for name, raw in zip(names, contents, strict=True)}
    try:
        topics = BrokerAdmin(settings).metadata().topics
        missing = [t for t in (settings.topic_policy, settings.topic_audit) if t not in topics]
        if missing:
            print(f"hotpath policy publish: no topic {', '.join(missing)} on {settings.bootstrap_servers}: "
                  f"run `hotpath topics apply` first", file=sys.stderr)
            return 1
        published = _published(settings)
        previous = published.current()
        if previous is not None and previous.version == version:
            print(f"policy version {version[:12]} is already the published one: nothing to do")
            return 0
        at = datetime.now(UTC)
        records = publication(texts, version, by, at, dropped=list(published.files))
        _send(TopicSink(settings, settings.topic_policy), records)
        audit_key, audit = published_record(version, previous.texts if previous else {}, texts, at=at, by=by,
                                            previous_version=previous.version if previous else None)
        _send(TopicSink(settings, settings.topic_audit), [(audit_key.encode(), orjson.dumps(audit))])
    except (TopicsError, PublishError, ValueError) as exc:
        print(f"hotpath policy publish: {mask(str(exc))}", file=sys.stderr)
        return 1
    print(mask(f"published policy version {version[:12]} ({', '.join(names)}) by {by}"))
    return 0


def _published(settings: Settings):
    """The policy as hotpath.policy holds it now; a record that is not a policy file is skipped, as workers do."""
    from stream.kafka.wholetopic import read_to_end
    from stream.policy.published import PublishedPolicy

    published = PublishedPolicy()
    for _, _, offset, key, value in read_to_end(settings, [settings.topic_policy]):
        try:
            published.apply(key, value)
        except ValueError as exc:  # no key, not UTF-8, not a published file
            print(mask_cut(f"hotpath policy publish: warning: skipped {settings.topic_policy}@{offset}: "
                           f"{type(exc).__name__}: {exc}", 300), file=sys.stderr)
    return published


def _send(sink, records: list[tuple[bytes, bytes | None]]) -> None:
    for key, value in records:
        sink.send(key.decode(), value)
    sink.confirm()


def explain(settings: Settings, args: argparse.Namespace) -> int:
    """Replay the inputs without and with the policy and print what it changes, one line per finding."""
    from stream.correlate.replay import replay
    from stream.policy.document import load_policy
    from stream.policy.explain import changes, outcomes

    missing = missing_inputs(args)
    if missing:
        print(f"hotpath policy explain: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    policy = load_policy(args.files)
    inputs = {"findings": args.findings, "traces": args.traces, "alerts": args.alerts, "assets": args.assets}
    without = outcomes(replay(settings, **inputs, errors=sys.stderr))
    with_policy = outcomes(replay(settings, **inputs, policy=policy))
    lines = changes(without, with_policy)
    for line in lines:
        print(line)
    print(f"policy version {policy.digest[:12]} changes {len(lines)} of {len(without.keys() | with_policy.keys())} "
          f"escalated findings", file=sys.stderr)
    return 0
