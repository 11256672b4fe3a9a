"""HTTP endpoint for Prometheus and orchestrators (`metrics.port`).

- `/metrics`: every metric of pipeline/metrics.py, Prometheus text format (prometheus-client).
- `/healthz`: 200 while the process and its stages are alive (a stage that broke, or an abort, → 503). Use it as
  a liveness probe: a 503 means restart the process.
- `/readyz`: 200 once the model is loaded and the publisher is connected to Redis; 503 with the reason otherwise.
  Use it as a readiness probe: a Redis outage makes it 503 while events wait in the spool.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from pipeline.errors import config_error

log = logging.getLogger(__name__)


class Observed(Protocol):
    def healthy(self) -> bool: ...

    def ready(self) -> tuple[bool, str]: ...


class HealthServer:
    """Serves the three endpoints in a daemon thread; `port=0` picks a free port (see `.port`)."""

    def __init__(self, target: Observed, host: str = "0.0.0.0", port: int = 0) -> None:
        target_ref = target

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok = target_ref.healthy()
                    self._reply(200 if ok else 503, b"ok\n" if ok else b"unhealthy: a stage stopped\n")
                elif path == "/readyz":
                    ok, why = target_ref.ready()
                    self._reply(200 if ok else 503, f"{why}\n".encode())
                else:
                    self._reply(404, b"not found: try /metrics, /healthz, /readyz\n")

            def _reply(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # scrapes every few seconds: not news
                log.debug("http: " + format, *args)

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise config_error("metrics.port", f"cannot listen on {host}:{port} ({exc.strerror})") from None
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("metrics and health on http://%s:%d/metrics /healthz /readyz", *self._server.server_address[:2])
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
