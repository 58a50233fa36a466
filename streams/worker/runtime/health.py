"""The worker's HTTP endpoints: /metrics, /healthz, /readyz.

/healthz answers while the process runs its event loop; /readyz only once
the watchlist caught up and the Faust app is running, so a rolling deploy
waits for a worker that can actually match.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)


class HealthServer(Service):
    """Serves the endpoints on ``port`` (all interfaces); port 0 disables it."""

    def __init__(self, port: int, ready: Callable[[], bool], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.port = port
        self.is_ready = ready
        self._runner: web.AppRunner | None = None

    async def on_start(self) -> None:
        """Start the HTTP server."""
        if self.port == 0:
            return
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # Scraped from outside the pod: all interfaces on purpose.
        site = web.TCPSite(self._runner, "0.0.0.0", self.port)  # noqa: S104
        await site.start()
        log.info("metrics on :%d/metrics", self.port)

    async def on_stop(self) -> None:
        """Stop the HTTP server."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.is_ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="catching up\n")
