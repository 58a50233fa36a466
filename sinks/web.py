"""The sink's HTTP endpoints: /metrics (Prometheus), /healthz (alive), /readyz (not blocked)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)


def serve(
    port: int,
    ready: Callable[[], tuple[bool, str]],
    host: str = "0.0.0.0",  # noqa: S104 - scraped from other hosts
) -> ThreadingHTTPServer:
    """Start the endpoints on a daemon thread; the caller shuts the server down.

    ``ready`` returns (ready, reason); /readyz answers 200 or 503 with the reason.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(200, b"ok\n")
            elif path == "/readyz":
                ok, reason = ready()
                self._send(200 if ok else 503, reason.encode() + b"\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug(format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="sink-http", daemon=True).start()
    return server
