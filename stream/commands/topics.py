"""``hotpath topics apply``: make the broker agree with ``topics/topics.yaml`` and say what changed."""

from __future__ import annotations

import argparse
import sys

from stream.kafka.topics import TopicsError, reconcile
from stream.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    parser.add_argument("--prefix", default="", help="prepend this to every topic name (tests, shared clusters)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        topic_plan = reconcile(settings, args.prefix, args.dry_run)
    except TopicsError as exc:
        print(f"hotpath: {exc}", file=sys.stderr)
        return 1
    for change in topic_plan.changes:
        print(change.describe(args.dry_run))
    for notice in topic_plan.notices:
        print(f"note: {notice}")
    count = len(topic_plan.unchanged)
    print(f"unchanged: {count} topic{'' if count == 1 else 's'}")
    return 0
