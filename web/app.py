"""The live page's request handling: the page, its static files, the JSON API and the live stream (docs/LIVE.md).

Read-only (GET/HEAD only). One Server-Sent Events connection per open page (`/api/live`) carries every source's
pictures, the source list and the event feed: a page with 16 cameras needs one connection, not 16 (browsers
allow 6 per host over HTTP/1.1, so an `<img>` MJPEG stream per camera stalls past 6). Each viewer's thread pulls
the latest picture at its own pace (`web.max_fps`), so a viewer that stops reading blocks only itself, and only
until the socket's timeout drops it.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote

from pipeline.config.observability import WebConfig
from pipeline.events import encode_event
from pipeline.http import Observed
from pipeline.stats import RunStats
from sinks.live_events import EventFeed
from sinks.live_view import LiveView
from web.api import event_matches, feed_event, source_view, status_view

log = logging.getLogger(__name__)

_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)*$")  # what a path prefix may be: it is written into the page
_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}
_SOURCES_EVERY_S = 1.0  # the live stream's source list refresh
_BACKLOG_EVENTS = 50  # events a freshly opened page starts with
_FRAME_POLL_S = 0.1  # a new picture is noticed this soon (events wake the viewer at once)
_PAGE_HEADERS = {
    # our own files only, pictures as data: URLs; no referrer, so a ?token= in the address never travels on
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


@dataclass
class Request:
    handler: BaseHTTPRequestHandler
    path: str
    query: dict[str, list[str]]
    head: bool

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default


class WebApp:
    """Routes `/`, `/static/*` and `/api/*` for `pipeline.http.HealthServer`."""

    def __init__(self, cfg: WebConfig, target: Observed, stats: RunStats, view: LiveView, feed: EventFeed) -> None:
        self.cfg = cfg
        self.target = target
        self.stats = stats
        self.view = view
        self.feed = feed
        self.token = os.environ.get(cfg.token_env) or None
        self.started = time.monotonic()
        self.closing = threading.Event()
        self._viewers = 0
        self._viewers_lock = threading.Lock()
        folder = resources.files("web") / "static"
        self._static = {
            entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.name.endswith(tuple(_STATIC_TYPES))
        }

    @property
    def viewers(self) -> int:
        return self._viewers

    def close(self) -> None:
        self.closing.set()

    # --- routing ---------------------------------------------------------------------------------------------
    def handle(self, handler: BaseHTTPRequestHandler, path: str, query: str, head: bool) -> None:
        try:
            request = Request(handler, unquote(path), parse_qs(query, max_num_fields=32), head)
        except ValueError:
            return self._text(Request(handler, path, {}, head), 400, "bad query: at most 32 parameters")
        if request.path.startswith("/static/"):
            return self._static_file(request, request.path.removeprefix("/static/"))
        if not self._authorized(request):
            return self._text(
                request, 401, "unauthorized: this page needs its token (?token=… or Authorization: Bearer)"
            )
        if request.path in ("/", "/index.html"):
            return self._page(request)
        if request.path == "/api/status":
            return self._json(request, self._status())
        if request.path == "/api/sources":
            return self._json(request, {"sources": self._sources()})
        if request.path == "/api/events":
            return self._events(request)
        if request.path == "/api/live":
            return self._live(request)
        if request.path.startswith("/api/sources/"):
            source_id, _, rest = request.path.removeprefix("/api/sources/").partition("/")
            if source_id not in self.stats.sources:
                shown = source_id if len(source_id) <= 80 else source_id[:80] + "…"
                known = ", ".join(sorted(self.stats.sources))
                return self._text(request, 404, f"unknown source {shown!r} (sources: {known})")
            if rest == "":
                return self._json(request, self._sources([source_id])[0])
            if rest == "frame.jpg":
                return self._frame(request, source_id)
        return self._text(request, 404, "not found: the page is at /, its API under /api/ (docs/LIVE.md)")

    def _authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        offered = request.arg("token") or ""
        header = request.handler.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            offered = header.removeprefix("Bearer ").strip()
        return hmac.compare_digest(offered.encode(), self.token.encode())

    # --- views -----------------------------------------------------------------------------------------------
    def _page(self, request: Request) -> None:
        prefix = request.handler.headers.get("X-Forwarded-Prefix", "").rstrip("/") or self.cfg.path_prefix
        if not _PREFIX.match(prefix):
            prefix = self.cfg.path_prefix
        base = f'<base href="{prefix}/">' if prefix else ""
        page = self._static["index.html"].replace(b"<!--BASE-->", base.encode())
        self._reply(request, 200, page, _STATIC_TYPES[".html"], {"Cache-Control": "no-store", **_PAGE_HEADERS})

    def _static_file(self, request: Request, name: str) -> None:
        body = self._static.get(name)
        if body is None or name == "index.html":
            return self._text(request, 404, f"no static file {name[:80]!r}")
        suffix = name[name.rfind(".") :]
        self._reply(request, 200, body, _STATIC_TYPES[suffix], {"Cache-Control": "no-cache"})

    def _status(self) -> dict[str, Any]:
        return status_view(
            self.stats.snapshot(), self.target.healthy(), self.target.ready(), self.started, self._viewers
        )

    def _sources(self, only: list[str] | None = None) -> list[dict[str, Any]]:
        snapshot = self.stats.snapshot()
        return [source_view(snapshot[sid], self.view, self.feed) for sid in (only or list(snapshot))]

    def _events(self, request: Request) -> None:
        sources, types = self._filters(request)
        try:
            since = int(request.arg("since", "0") or 0)
            limit = min(1000, max(1, int(request.arg("limit", "100") or 100)))
        except ValueError:
            return self._text(request, 400, "bad query: since and limit are integers")
        masks = request.arg("masks", "1") != "0"
        if since > 0:
            items, missed = self.feed.since(since, limit=self.feed.capacity)
        else:
            items, missed = self.feed.recent(self.feed.capacity), 0
        shown = [feed_event(seq, e, masks) for seq, e in items if event_matches(e, sources, types)]
        shown = shown[:limit] if since > 0 else shown[-limit:]
        self._json(request, {"events": shown, "last_seq": self.feed.last_seq, "missed": missed})

    def _frame(self, request: Request, source_id: str) -> None:
        highlight = _int_or_none(request.arg("highlight"))
        snapshot = self.view.snapshot(source_id, highlight)
        if snapshot is None:
            return self._text(request, 503, f"source {source_id!r} has no picture yet", {"Retry-After": "1"})
        self._reply(request, 200, snapshot.jpeg, "image/jpeg", {"Cache-Control": "no-store"})

    def _filters(self, request: Request) -> tuple[set[str] | None, set[str] | None]:
        def split(name: str) -> set[str] | None:
            values = {v for arg in request.query.get(name, []) for v in arg.split(",") if v}
            return values or None

        return split("source"), split("type")

    # --- the live stream (Server-Sent Events) ----------------------------------------------------------------
    def _live(self, request: Request) -> None:
        wanted = request.arg("sources")
        source_ids = [s for s in wanted.split(",") if s] if wanted else list(self.stats.sources)
        unknown = [s for s in source_ids if s not in self.stats.sources]
        if unknown:
            return self._text(request, 404, f"unknown source {unknown[0][:80]!r}")
        highlight_source, highlight = None, None
        if request.arg("highlight"):
            highlight_source, _, track = (request.arg("highlight") or "").rpartition(":")
            highlight = _int_or_none(track)
            if highlight is None or highlight_source not in self.stats.sources:
                return self._text(request, 400, "bad query: highlight is SOURCE:TRACK_ID")
        with self._viewers_lock:
            if self._viewers >= self.cfg.max_viewers:
                return self._text(request, 503, f"too many viewers (web.max_viewers={self.cfg.max_viewers})")
            self._viewers += 1
        try:
            self._stream(request, source_ids, highlight_source, highlight)
        except (OSError, ValueError):  # the viewer went away or stalled past the socket timeout
            pass
        finally:
            with self._viewers_lock:
                self._viewers -= 1

    def _stream(self, request: Request, source_ids: list[str], hl_source: str | None, hl_track: int | None) -> None:
        handler = request.handler
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("X-Accel-Buffering", "no")  # nginx: pass the stream through unbuffered
        handler.end_headers()
        if request.head:
            return
        send_frames = request.arg("frames", "1") != "0"
        send_events = request.arg("events", "1") != "0"
        event_sources, event_types = self._filters(request)
        resume = _int_or_none(handler.headers.get("Last-Event-ID") or request.arg("since"))
        cursor = resume if resume is not None else max(0, self.feed.last_seq - _BACKLOG_EVENTS)
        interval = 1.0 / self.cfg.max_fps
        due = dict.fromkeys(source_ids, 0.0)
        sent = dict.fromkeys(source_ids, 0)
        next_sources = 0.0
        write = handler.wfile.write
        while not self.closing.is_set():
            now = time.monotonic()
            if now >= next_sources:
                write(_sse("sources", {"status": self._status(), "sources": self._sources(source_ids)}))
                next_sources = now + _SOURCES_EVERY_S
            if send_events:
                items, missed = self.feed.since(cursor)
                if missed:
                    write(_sse("missed", {"count": missed}))
                for seq, event in items:
                    if event_matches(event, event_sources, event_types):
                        write(_sse("event", feed_event(seq, event, masks=False), seq))
                    cursor = seq
            for source_id in source_ids if send_frames else ():
                if now < due[source_id] or self.view.seq(source_id) <= sent[source_id]:
                    continue
                snapshot = self.view.snapshot(source_id, hl_track if source_id == hl_source else None)
                if snapshot is None or snapshot.seq <= sent[source_id]:
                    continue
                sent[source_id], due[source_id] = snapshot.seq, now + interval
                write(_sse("frame", _frame_message(snapshot)))
            # sleep until an event arrives, the source list is due, or the next look for new pictures
            now = time.monotonic()
            wait = min([next_sources, *(t for t in due.values() if t > now), now + _FRAME_POLL_S]) - now
            self.feed.wait(cursor if send_events else self.feed.last_seq, max(wait, 0.01))

    # --- replies ---------------------------------------------------------------------------------------------
    def _json(self, request: Request, body: Any) -> None:
        # encode_event: strict JSON (a NaN becomes null), which every browser's JSON.parse accepts
        self._reply(request, 200, encode_event(body).encode(), "application/json", {"Cache-Control": "no-store"})

    def _text(self, request: Request, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._reply(request, code, (message + "\n").encode(), "text/plain; charset=utf-8", headers)

    def _reply(
        self, request: Request, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        handler = request.handler
        handler.send_response(code)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        if not request.head:
            handler.wfile.write(body)


def _sse(kind: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {encode_event(data)}\n\n".encode()


def _frame_message(snapshot: Any) -> dict[str, Any]:
    return {
        "source": snapshot.source_id,
        "seq": snapshot.seq,
        "frame_index": snapshot.frame_index,
        "capture_time": snapshot.capture_time,
        "width": snapshot.width,
        "height": snapshot.height,
        "tracks": list(snapshot.track_ids),
        "highlight": snapshot.highlight,
        "jpeg": base64.b64encode(snapshot.jpeg).decode("ascii"),
    }


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None
