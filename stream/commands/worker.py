"""``hotpath worker``: run the streaming job (the Faust app of stream.worker.app)."""

from __future__ import annotations

import argparse
import sys
from typing import get_args

from stream.settings import LogLevel, Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loglevel", default=None, type=str.upper, choices=get_args(LogLevel),
                        help="worker log level, any case (default: HOTPATH_LOG_LEVEL)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import faust

    from stream.kafka.topics import TopicsError
    from stream.logs import configure_logging
    from stream.worker.app import create_app
    from stream.worker.memory import return_large_buffers_to_the_os

    return_large_buffers_to_the_os()
    try:
        hotpath = create_app(settings)
    except TopicsError as exc:  # the broker refused or is not there: one line, not librdkafka's retries
        print(f"hotpath worker: {exc}", file=sys.stderr)
        return 1
    configure_logging(args.loglevel or settings.log_level)
    worker = faust.Worker(hotpath.app, loglevel=args.loglevel or settings.log_level, logging_config=None,
                          override_logging=False)
    try:
        worker.execute_from_commandline()
    finally:
        hotpath.feed.stop()
        hotpath.policy_feed.stop()
    return 0
