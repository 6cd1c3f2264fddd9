"""``hotpath deliver``'s own web server: liveness, readiness and Prometheus metrics.

``/health/live`` answers 200 while the service's loops turn (503 when one is wedged: restart it),
``/health/ready`` 200 when it consumes and delivers (503 with the reason: connecting, waiting for
partitions, Kafka unreachable, stopping), ``/health`` is kept as an alias of readiness, and
``/metrics`` is the Prometheus text of a registry. None of them shows data, so none needs a token.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest

from stream.metrics import CONTENT_TYPE

Check = Callable[[], tuple[bool, str]]


class WebServerError(Exception):
    """The server could not listen (port taken, address not here). One line."""


class OpsServer:
    """An aiohttp server on ``host:port`` (port 0: any free port, see :attr:`port`)."""

    def __init__(self, host: str, port: int, *, live: Check, ready: Check, registry: CollectorRegistry):
        self._host, self._requested_port = host, port
        self._live, self._ready, self._registry = live, ready, registry
        self._runner = None
        self.port: int | None = None

    async def start(self) -> None:
        from aiohttp import web  # imported when serving: `hotpath --help` stays quick

        def answer(check: Check):
            async def handler(_request: web.Request) -> web.Response:
                ok, reason = check()
                return web.json_response({"ok": ok, "status": reason}, status=200 if ok else 503)

            return handler

        async def metrics(_request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE})

        app = web.Application()
        app.router.add_get("/health/live", answer(self._live))
        app.router.add_get("/health/ready", answer(self._ready))
        app.router.add_get("/health", answer(self._ready))
        app.router.add_get("/metrics", metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self._host, self._requested_port).start()
        except OSError as exc:
            await self._runner.cleanup()
            raise WebServerError(f"cannot listen on {self._host}:{self._requested_port} ({exc.strerror}): "
                                 "set HOTPATH_DELIVER_WEB_PORT to a free port") from None
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
