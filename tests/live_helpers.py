"""Helpers for the live page's tests: a run with the page on, a detector that always finds one moving object, an
HTTP camera that can be killed, and headless Chromium (Debian's `chromium` + `chromium-driver`)."""

from __future__ import annotations

import http.client
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch

from pipeline.config import PipelineConfig
from pipeline.items import RawDetections
from pipeline.run_command import pipeline_with_server
from pipeline.runner import Pipeline
from sinks.base import EventSink
from tests.pipeline_helpers import TINY_CLASSES, tiny_detector

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


class MovingObjectDetector:
    """The tiny real model's interface, but its answer is scripted: one `person` box sliding right, every frame
    (tracks start, update and end for sure), taking `delay_s` per image like a slower model."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.inner = tiny_detector()
        self.class_names = TINY_CLASSES
        self.delay_s = delay_s
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def detect(self, images: list[torch.Tensor]) -> list[RawDetections]:
        results = []
        for image in images:
            time.sleep(self.delay_s)
            height, width = int(image.shape[-2]), int(image.shape[-1])
            x = 10 + (self.calls * 3) % max(1, width - 80)
            self.calls += 1
            box = torch.tensor([[x, height * 0.2, x + 60, height * 0.8]], dtype=torch.float32)
            results.append(RawDetections(box, torch.tensor([0.9]), torch.tensor([1]), torch.ones((1, 1, 28, 28)) * 0.9))
        return results


class PublishTimes(EventSink):
    """Records when each event was handed to the sinks (wall clock), by (source id, event id)."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, str], float] = {}
        self.events: list[dict[str, Any]] = []

    def publish(self, source_id: str, events: list[dict[str, Any]]) -> None:
        now = time.time()
        for event in events:
            self.times[(source_id, event["event_id"])] = now
            self.events.append(event)


@contextmanager
def running(cfg: PipelineConfig, **pipeline_args: Any) -> Iterator[tuple[Pipeline, str]]:
    """Run the pipeline (with its HTTP server: cfg.metrics.port must be set) in a thread; yield it and the base
    URL; stop it at the end."""
    pipeline, server = pipeline_with_server(cfg, **pipeline_args)
    assert server is not None
    thread = threading.Thread(target=pipeline.run, name="test-run", daemon=True)
    thread.start()
    try:
        yield pipeline, f"http://127.0.0.1:{server.port}"
    finally:
        pipeline.stop()
        thread.join(30)
        if thread.is_alive():
            pipeline.abort()
            thread.join(10)
        server.stop()


class _TrickleHandler(SimpleHTTPRequestHandler):
    """Serves files at about real time (like a camera), until the server is killed."""

    killed: threading.Event

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.end_headers()
        chunk = max(1000, len(data) // 200)  # the file over ~20 s
        try:
            for start in range(0, len(data), chunk):
                if self.killed.is_set():
                    return
                self.wfile.write(data[start : start + chunk])
                self.wfile.flush()
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass


class HttpCamera:
    """An HTTP server trickling a file at about real time; `kill()` drops every connection and stops listening."""

    def __init__(self, root: Path) -> None:
        self.killed = threading.Event()
        handler = type("Handler", (_TrickleHandler,), {"killed": self.killed})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def kill(self) -> None:
        if not self.killed.is_set():
            self.killed.set()
            self.server.shutdown()
            self.server.server_close()


class PrefixProxy:
    """A reverse proxy serving the server at `upstream_port` under `prefix`, the way nginx's
    `location /prefix { proxy_pass http://upstream/; proxy_set_header X-Forwarded-Prefix /prefix; proxy_buffering off; }`
    does: the prefix is stripped, streamed responses are passed through as they come."""

    def __init__(self, upstream_port: int, prefix: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if not self.path.startswith(prefix):
                    self.send_error(404)
                    return
                forwarded = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "last-event-id")}
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                upstream.request(
                    "GET", self.path[len(prefix) :] or "/", headers={**forwarded, "X-Forwarded-Prefix": prefix}
                )
                response = upstream.getresponse()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("connection", "server", "date", "transfer-encoding"):
                        self.send_header(name, value)
                self.end_headers()
                try:
                    while chunk := response.read1(65536):
                        self.wfile.write(chunk)
                except OSError:
                    pass
                finally:
                    upstream.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


@contextmanager
def chromium(width: int = 1280, height: int = 800) -> Iterator[Any]:
    """A headless Chromium driven by Selenium through Debian's chromedriver, with a throwaway profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="maskstream-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(condition: Any, timeout: float, interval: float = 0.1, message: str = "") -> Any:
    """Poll `condition()` until it returns something truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s: {message}")
        time.sleep(interval)
