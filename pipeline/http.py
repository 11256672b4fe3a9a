"""HTTP endpoint for Prometheus and orchestrators (`metrics.port`).

- `/metrics`: every metric of pipeline/metrics.py, Prometheus text format (prometheus-client).
- `/healthz`: 200 while the process and its stages are alive (a stage that broke, or an abort, → 503). Use it as
  a liveness probe: a 503 means restart the process.
- `/readyz`: 200 once the model is loaded and the publisher is connected to Redis; 503 with the reason otherwise.
  Use it as a readiness probe: a Redis outage makes it 503 while events wait in the spool.
- `/`, `/static/`, `/api/`: the live page and its JSON API when `metrics.web` is on (web, docs/LIVE.md).

Bounded: at most `max_connections` connections are served at once (a thread each); more get an immediate 503.
Reads and writes time out (`_SOCKET_TIMEOUT_S`), so a client that stops sending or reading frees its thread.
Only GET and HEAD; a request line over `_MAX_REQUEST_LINE` bytes, too many or too long headers, or a malformed
request get a 4xx (never a traceback).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from pipeline.errors import config_error

if TYPE_CHECKING:
    from web.app import WebApp

log = logging.getLogger(__name__)

_SOCKET_TIMEOUT_S = 10.0  # a client silent (or not reading) this long is dropped
_MAX_REQUEST_LINE = 8192
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: 33\r\n\r\nbusy: too many connections, retry\n"
)


class Observed(Protocol):
    def healthy(self) -> bool: ...

    def ready(self) -> tuple[bool, str]: ...


class HealthServer:
    """Serves the three endpoints in a daemon thread; `port=0` picks a free port (see `.port`)."""

    def __init__(
        self,
        target: Observed,
        host: str = "0.0.0.0",
        port: int = 0,
        max_connections: int = 64,
        web: WebApp | None = None,
    ) -> None:
        target_ref = target
        self.web = web

        class Handler(BaseHTTPRequestHandler):
            timeout = _SOCKET_TIMEOUT_S
            default_request_version = "HTTP/1.0"  # errors to garbage requests still get a status line

            def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
                # the client's fault is a 4xx: an unknown method or HTTP version is not our failure
                code, message = {501: (405, "read-only: GET and HEAD only"), 505: (400, "HTTP/1.x only")}.get(
                    code, (code, message)
                )
                super().send_error(code, message, explain)

            def parse_request(self) -> bool:
                if len(self.raw_requestline) > _MAX_REQUEST_LINE:  # type: ignore[attr-defined]  # set by handle_one_request
                    self.requestline, self.request_version = "(too long)", "HTTP/1.0"
                    self.send_error(414, "request line too long")
                    return False
                if not super().parse_request():
                    return False
                if self.command not in ("GET", "HEAD"):
                    self.send_error(405, "read-only: GET and HEAD only")
                    return False
                if (
                    self.headers.get("Content-Length", "0").strip() not in ("", "0")
                    or "Transfer-Encoding" in self.headers
                ):
                    self.send_error(413, "requests carry no body here")
                    return False
                return True

            def do_HEAD(self) -> None:
                self._route(head=True)

            def do_GET(self) -> None:
                self._route(head=False)

            def _route(self, head: bool) -> None:
                self._head = head
                path, _, query = self.path.partition("?")
                if path == "/metrics":
                    self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok = target_ref.healthy()
                    self._reply(200 if ok else 503, b"ok\n" if ok else b"unhealthy: a stage stopped\n")
                elif path == "/readyz":
                    ok, why = target_ref.ready()
                    self._reply(200 if ok else 503, f"{why}\n".encode())
                elif web is not None:
                    try:
                        web.handle(self, path, query, head)
                    except OSError:  # the client went away or stalled: nothing to answer
                        self.close_connection = True
                    except Exception:
                        log.exception("web: %s failed", path[:200])
                        self.close_connection = True
                        with contextlib.suppress(Exception):  # one line for the client, the traceback in the log
                            self.send_error(500, "internal error (see the server log)")
                else:
                    self._reply(404, b"not found: try /metrics, /healthz, /readyz\n")

            def _reply(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not self._head:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # scrapes every few seconds: not news
                log.debug("http: " + format, *args)

        try:
            self._server = _BoundedServer((host, port), Handler, max_connections)
        except OSError as exc:
            raise config_error("metrics.port", f"cannot listen on {host}:{port} ({exc.strerror})") from None
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("metrics and health on http://%s:%d/metrics /healthz /readyz", *self._server.server_address[:2])
        if self.web is not None:
            log.info("live page on http://%s:%d/", *self._server.server_address[:2])
        return self

    def stop(self) -> None:
        if self.web is not None:
            self.web.close()  # live streams end their loops
        self._server.shutdown()
        self._server.server_close()

    @property
    def connections(self) -> int:
        """Connections being served now (each holds a thread)."""
        return self._server.active


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, but at most `max_connections` at once: past that, a 503 from the accept loop."""

    daemon_threads = True
    request_queue_size = 128  # a burst waits in the kernel's backlog rather than being refused

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int):
        self._slots = threading.BoundedSemaphore(max_connections)
        self._active_lock = threading.Lock()
        self.active = 0
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        with self._active_lock:
            self.active += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._active_lock:
            self.active -= 1
        self._slots.release()

    def _refuse(self, request) -> None:
        try:
            request.setblocking(False)
            with contextlib.suppress(OSError):
                request.recv(65536)  # whatever of the request already arrived: closing unread data resets
            request.settimeout(0.2)
            request.sendall(_BUSY)
        except OSError:
            pass
        finally:
            self.shutdown_request(request)
