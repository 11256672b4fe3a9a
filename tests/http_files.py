"""A real local HTTP server for download tests: serves files with Range support, and misbehaves on request.

`cut_after`: the first `cuts` responses send full headers, then only this many body bytes, then close the
connection (a dropped link mid-download). `status`: answer every request with this HTTP error. As a proxy
(`http_proxy` pointed at it) it sees absolute URLs in the request line and serves them by their file name.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Behaviour:
    cut_after: int | None = None
    cuts: int = 0
    status: int | None = None
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (request path, Range header)


class FileServer:
    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files  # file name -> path on disk
        self.behaviour = Behaviour()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/models/{name}"

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        behaviour = self.behaviour
        range_header = handler.headers.get("Range")
        behaviour.requests.append((handler.path, range_header))
        if behaviour.status is not None:
            handler.send_error(behaviour.status)
            return
        name = handler.path.rsplit("/", 1)[-1]
        if name not in self.files:
            handler.send_error(404)
            return
        data = self.files[name].read_bytes()
        start = 0
        if range_header and range_header.startswith("bytes="):
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(data)}")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        handler.send_header("Content-Length", str(len(data) - start))
        handler.send_header("Accept-Ranges", "bytes")
        handler.end_headers()
        body = data[start:]
        if behaviour.cuts > 0 and behaviour.cut_after is not None:
            behaviour.cuts -= 1
            handler.wfile.write(body[: behaviour.cut_after])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)  # the link drops: the client sees a short body
            return
        with contextlib.suppress(ConnectionError):  # the client may give up mid-body (disk full, test over)
            handler.wfile.write(body)
