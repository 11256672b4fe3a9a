"""`maskstream run CONFIG --ray ADDRESS`: connect to the Ray cluster, run the controller, report like `run`.

Exit codes as `run`: 0 every source done; 1 some failed; 2 the job could not start (unreachable Ray address,
Ray refused the token, no slots, no Redis); 130 stopped by a second Ctrl-C. The first SIGINT/SIGTERM stops the
job gracefully (sources end, events flush, workers go); killing the driver outright leaves the workers running,
and the same command started again resumes the job (its state is in Redis).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.errors import MaskstreamError

log = logging.getLogger("maskstream.cluster")


def default_job_id(cfg: PipelineConfig) -> str:
    """Same sources → same job: running the same command again resumes it."""
    digest = hashlib.blake2b(digest_size=6)
    for source in sorted(cfg.sources, key=lambda s: s.id):
        digest.update(f"{source.id}\x00{source.url}\x00".encode())
    return f"job-{digest.hexdigest()}"


def check_address(address: str, timeout_s: float = 3.0) -> None:
    """`host:port` must accept a TCP connection within `timeout_s` (Ray itself would retry for a minute)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise MaskstreamError(f"--ray: expected HOST:PORT or auto, got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise MaskstreamError(f"Ray unreachable at {address}: {exc.strerror or exc}") from None


def connect(address: str, namespace: str) -> None:
    """ray.init with the token from the environment (RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH); one-line errors."""
    check_address(address)
    import ray

    env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    try:
        ray.init(
            address=address,
            namespace=namespace,
            log_to_driver=False,
            logging_level=logging.WARNING,
            runtime_env={"env_vars": env} if env else None,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        text = str(exc)
        hint = " (is RAY_AUTH_TOKEN the cluster's token?)" if "auth" in text.lower() or "token" in text.lower() else ""
        raise MaskstreamError(f"Ray at {address} refused the connection{hint}: {_last_line(text)}") from None


def run_on_ray(cfg: PipelineConfig, address: str, job_id: str | None = None) -> int:
    if cfg.redis is None:
        raise MaskstreamError("--ray needs redis: set redis.url (fenced writes are how ownership is enforced)")
    from cluster.controller import Controller  # imports ray: only under --ray

    connect(address, cfg.cluster.namespace)
    import ray

    try:
        controller = Controller(cfg, job_id or cfg.cluster.job_id or default_job_id(cfg))
        print(f"maskstream run --ray: job {controller.job_id}, {len(cfg.sources)} source(s)", file=sys.stderr)
        progress = _JobProgress(cfg)
        restore = _install_signal_handlers(controller)
        try:
            report = controller.run(on_tick=progress.tick)
            controller.shutdown()
        finally:
            restore()
            progress.close()
    finally:
        ray.shutdown()
    print(
        f"maskstream run --ray: {len(report.done)} done, {len(report.failed)} failed, {len(report.waiting)} not run, "
        f"{len(report.reassignments)} reassignment(s) in {report.elapsed_s:.1f} s",
        file=sys.stderr,
    )
    for source_id, error in report.failed.items():
        print(f"maskstream run: source {source_id}: {error}", file=sys.stderr)
    if report.failed and not report.done:
        return 2
    return 1 if report.failed else 0


def _install_signal_handlers(controller: Any):
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handle(signum: int, _frame: Any) -> None:
        print(f"\nmaskstream run --ray: {signal.Signals(signum).name}: stopping the job", file=sys.stderr)
        controller.stop()

    for sig in previous:
        signal.signal(sig, handle)
    return lambda: [signal.signal(sig, handler) for sig, handler in previous.items()]


class _JobProgress:
    """Files: a bar over the job's sources (done/failed of total). Live: a status line every status_interval_s."""

    def __init__(self, cfg: PipelineConfig) -> None:
        self.enabled = cfg.log.progress
        self.live = any(source.live for source in cfg.sources)
        self.interval = cfg.log.status_interval_s
        self._next = 0.0
        self._bar: Any = None

    def tick(self, controller: Any) -> None:
        if not self.enabled:
            return
        counts: dict[str, int] = {}
        for state in controller.states.values():
            counts[state.state] = counts.get(state.state, 0) + 1
        usable = sum(view.usable for view in controller.workers.values())
        summary = {**counts, "workers": usable}
        if self.live:
            if time.monotonic() >= self._next:
                self._next = time.monotonic() + self.interval
                parts = ", ".join(f"{k} {v}" for k, v in summary.items())
                print(f"[{time.strftime('%H:%M:%S')}] {parts}", file=sys.stderr, flush=True)
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=len(controller.states), unit="file", desc="maskstream job", file=sys.stderr)
        finished = counts.get("done", 0) + counts.get("failed", 0)
        self._bar.update(finished - self._bar.n)
        self._bar.set_postfix(summary, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no reason given"
