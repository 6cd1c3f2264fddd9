"""``hotpath demo``: the command line of the fintech demo, whose run lives in :mod:`stream.demo.run`.

Ctrl-C or SIGTERM ends the run and still lets it stop everything it started; the exit code is 0 when
the outcome matches the scenario's expectation, 1 when it differs or the demo could not run, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from stream.demo import DEFAULT_MINUTES, DEFAULT_SEED, MIN_MINUTES
from stream.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="scenario seed (same seed, same data)")
    parser.add_argument("--scale", type=int, default=1, help="multiply traffic and entities (benchmarks)")
    parser.add_argument("--minutes", type=int, default=DEFAULT_MINUTES,
                        help=f"event time the scenario covers (at least {MIN_MINUTES})")
    parser.add_argument("--play-seconds", type=float, default=30.0,
                        help="wall time to play the event time in; 0 plays as fast as Kafka takes it")
    parser.add_argument("--settle-seconds", type=float, default=5.0,
                        help="quiet time (no new escalation or webhook) that ends the run")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="longest wait for the worker to start, and for the results to settle")
    parser.add_argument("--partition-traces-by-id", action="store_true",
                        help="one trace per record keyed by its trace id, as the Collector's exporter option does")
    parser.add_argument("--keep-running", action="store_true",
                        help="after the final screen, keep the worker up (its /escalations view) until Ctrl-C")
    parser.add_argument("--keep-topics", action="store_true", help="do not delete the run's topics at the end")
    parser.add_argument("--run-dir", type=Path, default=Path(".run/demo"),
                        help="where each run keeps its outputs and logs (a folder per run id)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: the scenario needs the demo extra (the OpenTelemetry SDK), and a missing one must
    # stop the command before it prints or starts anything.
    from stream.demo.run import Demo, DemoError, DemoOptions

    if args.scale < 1 or args.minutes < MIN_MINUTES:
        print(f"hotpath demo: --scale must be at least 1 and --minutes at least {MIN_MINUTES}", file=sys.stderr)
        return 2
    demo = Demo(DemoOptions(**{option.name: getattr(args, option.name) for option in fields(DemoOptions)}),
                settings)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    _interrupted.clear()
    try:
        return 0 if demo.play() else 1
    except DemoError as exc:
        print(f"\nhotpath demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nhotpath demo: interrupted", file=sys.stderr)
        return 130
    except SystemError:
        # confluent-kafka's flush() loses the KeyboardInterrupt a signal raises while it waits, and
        # raises "returned NULL without setting an exception" instead: still an interruption.
        if not _interrupted.is_set():
            raise
        print("\nhotpath demo: interrupted", file=sys.stderr)
        return 130
    finally:
        with _uninterruptible():
            demo.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_interrupted = threading.Event()


def _interrupt(signum: int, frame: Any) -> None:
    _interrupted.set()
    raise KeyboardInterrupt


@contextmanager
def _uninterruptible():
    """Let clean-up finish: a second Ctrl-C must not leave children or topics behind."""
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
