"""`maskstream run CONFIG`: run the pipeline until the sources end (files) or a signal arrives (live).

Exit codes: 0 every source completed; 1 some sources failed while others completed (each failure is printed as one
line); 2 the run could not start or every source failed (one line: missing/corrupt file, unsupported URL scheme,
bad config value, Redis unreachable, bad weights); 130 aborted by a second Ctrl-C.
SIGINT/SIGTERM stop gracefully: sources stop, frames already decoded are processed, tracks end, events are flushed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from sinks.paths import check_output_paths

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig
    from pipeline.http import HealthServer
    from pipeline.runner import Pipeline, RunReport
    from pipeline.stats import RunStats

log = logging.getLogger("maskstream.run")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the pipeline on files or cameras",
        description="Run sources → Mask R-CNN → tracker → events (Redis Streams, JSON Lines) as configured.",
    )
    parser.add_argument("config", nargs="?", help="YAML config file (see configs/ and docs/CONFIG.md)")
    parser.add_argument(
        "--source",
        action="append",
        metavar="PATH_OR_URL",
        help="video file, glob or rtsp/http URL; repeat for several; `ID=URL` names it. Replaces the config's sources",
    )
    parser.add_argument("--redis", metavar="URL", help="publish to this Redis (redis://, rediss://); sets redis.url")
    parser.add_argument("--jsonl", metavar="FILE", help="also write every event to this JSON Lines file")
    parser.add_argument("--annotate", metavar="FILE.mp4", help="write an annotated video (masks, boxes, track ids)")
    parser.add_argument("--mot-out", metavar="DIR", help="write MOTChallenge track files, one per source")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (model.device)")
    parser.add_argument("--weights", metavar="FILE", help="model weights: auto (default), bundled, or a file")
    parser.add_argument("--metrics-port", type=int, metavar="PORT", help="serve /metrics, /healthz, /readyz here")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any option, e.g. --set batcher.batch_size=8 --set sources[0].fps_cap=5",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or status lines")
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="spread the sources over a Ray cluster (HOST:PORT or auto; pip install 'maskstream[cluster]')",
    )
    parser.add_argument("--job", metavar="ID", help="--ray: name of the job (resumes it if it exists)")
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    overrides = list(args.set)
    shortcuts = {
        "redis.url": args.redis,
        "sinks.jsonl": args.jsonl,
        "sinks.annotate": args.annotate,
        "sinks.mot_out": args.mot_out,
        "model.device": args.device,
        "model.weights": args.weights,
        "metrics.port": args.metrics_port,
    }
    for key, value in shortcuts.items():
        if value is not None:
            overrides.append(f"{key}={_yaml_quote(str(value))}")
    if args.no_progress:
        overrides.append("log.progress=false")
    from pipeline.config import load_config  # pydantic: only once there is a config to check, not for --help

    return load_config(args.config, overrides=overrides, sources=args.source)


def _yaml_quote(value: str) -> str:
    # paths and URLs must stay strings whatever they look like (e.g. `1.mp4`, `on`, `null`)
    return "'" + value.replace("'", "''") + "'"


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    check_output_paths(cfg)  # before torch loads: an unwritable output fails in well under a second
    if getattr(args, "ray", None):
        from cluster.driver import run_on_ray  # Ray is imported only here

        return run_on_ray(cfg, args.ray, job_id=args.job)
    if args.verbose == 0:
        logging.getLogger().setLevel(cfg.log.level.upper())
    pipeline, server = pipeline_with_server(cfg)  # torch and the stages load only when a run starts
    progress = _Progress(cfg, enabled=cfg.log.progress)
    restore = _install_signal_handlers(pipeline)
    try:
        report = pipeline.run(on_tick=progress.tick)
    finally:
        restore()
        progress.close()
        if server is not None:
            server.stop()
    _print_summary(report)
    busy = pipeline.stats.stage_busy_seconds()
    if busy:
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in busy.items())
        print(f"maskstream run: stage busy time: {parts} (of {report.elapsed_s:.1f} s)", file=sys.stderr)
    for stats in report.failed:
        print(f"maskstream run: source {stats.source_id}: {stats.errors[0]}", file=sys.stderr)
    if pipeline.aborted:
        return 130
    return report.exit_code


def pipeline_with_server(cfg: PipelineConfig, **pipeline_args: Any) -> tuple[Pipeline, HealthServer | None]:
    """The run's Pipeline and, when `metrics.port` is set, its started HTTP server; with `metrics.web` on, the live
    page's sinks (web) are tapped into the pipeline."""
    from pipeline.http import HealthServer
    from pipeline.runner import Pipeline

    metrics, web, port = cfg.metrics, cfg.metrics.web, cfg.metrics.port
    if not port:
        return Pipeline(cfg, run_id="", **pipeline_args), None
    if not web.enabled:
        pipeline = Pipeline(cfg, run_id="", **pipeline_args)
        return pipeline, HealthServer(pipeline, metrics.host, port, metrics.max_connections).start()
    from sinks.live_events import EventFeed
    from sinks.live_view import LiveView
    from web import WebApp

    def class_names() -> list[str]:  # the model loads inside pipeline.run()
        return pipeline.detector.class_names if pipeline.detector else []

    view, feed = LiveView(class_names, web.max_fps, web.jpeg_quality), EventFeed()
    pipeline = Pipeline(cfg, run_id="", event_taps=[feed], frame_taps=[view], **pipeline_args)
    app = WebApp(web, pipeline, pipeline.stats, view, feed)
    return pipeline, HealthServer(pipeline, metrics.host, port, metrics.max_connections, app).start()


def _install_signal_handlers(pipeline: Pipeline):
    """First SIGINT/SIGTERM: graceful stop (drain and flush). Second: abort at once."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handle(signum: int, _frame: Any) -> None:
        if pipeline.stopping:
            print("\nmaskstream run: second signal, aborting without draining", file=sys.stderr)
            pipeline.abort()
        else:
            print(f"\nmaskstream run: {signal.Signals(signum).name}: stopping (again to abort)", file=sys.stderr)
            pipeline.stop()

    for sig in previous:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


class _Progress:
    """A tqdm bar (frames, fps, ETA) when every source is a file; a periodic status line when any is live."""

    def __init__(self, cfg: PipelineConfig, enabled: bool) -> None:
        self.enabled = enabled
        self.live = any(source.live for source in cfg.sources)
        self.interval = cfg.log.status_interval_s
        self._next_line = time.monotonic() + self.interval
        self._bar: Any = None  # a tqdm bar, made on the first tick

    def tick(self, stats: RunStats) -> None:
        if not self.enabled:
            return
        if self.live:
            if time.monotonic() >= self._next_line:
                self._next_line = time.monotonic() + self.interval
                print(status_line(stats), file=sys.stderr, flush=True)
            return
        snapshot = stats.snapshot()
        expected = [s.expected_frames for s in snapshot.values()]
        total = sum(e for e in expected if e) if all(expected) else None
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="frame", desc="maskstream", dynamic_ncols=True, file=sys.stderr)
        elif total and self._bar.total != total:
            self._bar.total = total
        done = sum(s.frames_done for s in snapshot.values())
        self._bar.update(done - self._bar.n)
        events = sum(sum(s.events.values()) for s in snapshot.values())
        self._bar.set_postfix(events=events, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def status_line(stats: RunStats) -> str:
    """`[12:00:01] cam1 running 4.9 fps, dropped 120, latency p50 0.41 s p99 0.62 s, 35 events | cam2 ... | batch 3.5`"""
    parts = []
    for s in stats.snapshot().values():
        p50, p99 = s.latency_percentile(0.5), s.latency_percentile(0.99)
        latency = f"latency p50 {p50:.2f} s p99 {p99:.2f} s" if p50 is not None and p99 is not None else "latency -"
        parts.append(
            f"{s.source_id} {s.state} {s.fps():.1f} fps, dropped {s.frames_dropped}, {latency}, "
            f"{sum(s.events.values())} events"
        )
    batch = stats.mean_batch_size()
    if batch is not None:
        parts.append(f"batch {batch:.1f}")  # realised frames per model batch, run-wide
    model = f"model {stats.model} | " if stats.model else ""
    return f"[{time.strftime('%H:%M:%S')}] {model}" + " | ".join(parts) + stage_busy_text(stats)


def stage_busy_text(stats: RunStats) -> str:
    """` | busy: batcher 12% inference 85% ...`: share of the run each stage thread spent working (bottleneck ~100%)."""
    busy = stats.stage_busy_seconds()
    elapsed = stats.elapsed()
    if not busy or elapsed <= 0:
        return ""
    return " | busy: " + " ".join(f"{name} {100 * seconds / elapsed:.0f}%" for name, seconds in busy.items())


def _print_summary(report: RunReport) -> None:
    events = ", ".join(f"{kind} {count}" for kind, count in report.events_by_type().items()) or "none"
    print(
        f"maskstream run: {report.frames} frames from {len(report.sources)} source(s) in {report.elapsed_s:.1f} s "
        f"({report.fps:.1f} fps); events: {events}",
        file=sys.stderr,
    )
