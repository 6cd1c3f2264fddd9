"""``hotpath deliver``: run the deliver service (:mod:`stream.deliver.service`) until SIGTERM or SIGINT.

SIGTERM/SIGINT stops consuming; in-flight requests get a short grace period and the rest is
abandoned uncommitted. A broker that cannot be reached in ``kafka_connect_timeout_s``, a taken web
port or a failure while delivering stops the command with one log line, not a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from stream.deliver.ops import WebServerError
from stream.deliver.registry import sink_clients
from stream.deliver.service import DeliveryService
from stream.kafka.connect import KafkaUnavailable, fold_client_logs
from stream.logs import configure_logging
from stream.settings import Settings

log = logging.getLogger("hotpath.delivery")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start-from", choices=("earliest", "latest"), default="earliest",
                        help="where the delivery group without committed offsets begins (default: earliest, skip "
                             "nothing); a sink's group without them begins where the delivery group stood")


def run(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.log_level)
    fold_client_logs()
    sinks = sink_clients(settings)
    if not sinks:
        log.warning("no sinks configured (HOTPATH_SINKS): publishing the SIEM feed only")
    return asyncio.run(_serve(DeliveryService(settings, sinks, start_from=args.start_from)))


async def _serve(service: DeliveryService) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await service.run(stop)
    except (KafkaUnavailable, WebServerError) as exc:  # the message says what to do
        log.error(f"cannot start: {exc}")
        return 1
    except ModuleNotFoundError:  # an extra is missing (msk_iam needs [aws]): stream.commands.main says which
        raise
    except Exception as exc:  # one line in the log, not a traceback: the cause is in the message
        log.error("delivery stopped", extra={"error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0
