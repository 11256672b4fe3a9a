"""`maskstream demo` (`make demo`): a synthetic surveillance clip through the bundled model into Redis, with a summary.

Uses `REDIS_URL` when set; otherwise starts a private `redis-server` on a free port and stops it afterwards (the
events are then printed from it before it goes). Outputs go to `out/demo/` under the current directory: the clip,
`annotated.mp4`, `events.jsonl`, and the clip with its ground truth under `clip/`. The config is
`configs/demo.yaml`, shipped inside the package (works from an installed wheel, not only from a checkout). The live
page (docs/LIVE.md) is served while the demo runs, on `--port` (default: a free one); `--hold` keeps it up after
the clip ends, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from pipeline.errors import MaskstreamError
from pipeline.redact import redact_url

DEMO_CONFIG = "demo.yaml"  # in the `configs` package (package data)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def redis_for_demo():
    """Yield (url, started_here). A private redis-server when REDIS_URL is not set."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url, False
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise MaskstreamError(
            "the demo needs Redis: set REDIS_URL or install redis-server (apt-get install redis-server)"
        )
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="maskstream-demo-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise MaskstreamError(f"could not start redis-server on port {port}") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", True
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def demo_clip(out_dir: Path, frames: int, size: tuple[int, int], seed: int) -> Path:
    """The synthetic clip (reused when already rendered with the same parameters)."""
    clip_dir = out_dir / "clip"
    video = clip_dir / "video.mp4"
    stamp = out_dir / ".clip-params"
    params = f"surveillance seed={seed} frames={frames} size={size[0]}x{size[1]}"
    if video.exists() and stamp.exists() and stamp.read_text() == params:
        return video
    import synth

    print(f"maskstream demo: rendering a synthetic surveillance clip ({frames} frames, {size[0]}x{size[1]}) …")
    synth.render_clip(clip_dir, mode="surveillance", seed=seed, frames=frames, size=size, force=True)
    stamp.write_text(params)
    return video


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    parser.add_argument("--frames", type=int, default=150, help="length of the synthetic clip")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default=None, help="auto, cpu, cuda (default: the config's)")
    parser.add_argument("--port", type=int, default=None, help="live page port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--hold", action="store_true", help="keep the live page up after the clip ends, until Ctrl-C")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a synthetic clip through the bundled model into Redis, with a summary",
        description=__doc__.splitlines()[0],
    )
    _add_arguments(parser)
    parser.set_defaults(
        func=lambda args: run_demo(args.out, args.frames, args.seed, args.device, args.port or _free_port(), args.hold)
    )


def _hold(port: int) -> None:
    """Keep the process (and its live page) up until Ctrl-C."""
    print(f"\nmaskstream demo: done; the live page stays at http://127.0.0.1:{port}/ until Ctrl-C", flush=True)
    try:
        while True:  # short sleeps: Ctrl-C may land on another thread, and Python acts on it between them
            time.sleep(0.5)
    except KeyboardInterrupt:
        print()


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.demo`, kept for `make demo` on older checkouts; same as `maskstream demo`."""
    from pipeline.cli import main as cli_main

    return cli_main(["demo", *(sys.argv[1:] if argv is None else argv)])


def run_demo(
    out_dir: Path, frames: int, seed: int, device: str | None, port: int | None = None, hold: bool = False
) -> int:
    import redis

    from pipeline.config import load_config
    from pipeline.run_command import _install_signal_handlers, _Progress, pipeline_with_server

    out_dir.mkdir(parents=True, exist_ok=True)
    clip = demo_clip(out_dir, frames, (640, 360), seed)
    with redis_for_demo() as (url, private):
        overrides = [
            f"sources[0].url='{clip}'",
            f"redis.url='{url}'",
            f"sinks.annotate='{out_dir / 'annotated.mp4'}'",
            f"sinks.jsonl='{out_dir / 'events.jsonl'}'",
        ]
        if device:
            overrides.append(f"model.device={device}")
        if port:
            overrides += [f"metrics.port={port}", "metrics.host=127.0.0.1"]
        with resources.as_file(resources.files("configs") / DEMO_CONFIG) as config_path:
            cfg = load_config(config_path, overrides=overrides, env={**os.environ, "REDIS_URL": url})
        key = cfg.redis.key_for(cfg.sources[0].id) if cfg.redis else ""
        client = redis.Redis.from_url(url)
        last = client.xrevrange(key, count=1)
        since = last[0][0] if last else b"0-0"  # count only this run's events when REDIS_URL is shared

        print(f"maskstream demo: Redis at {redact_url(url)}{' (private, stopped afterwards)' if private else ''}")
        pipeline, server = pipeline_with_server(cfg)
        if server is not None:
            print(f"maskstream demo: live page at http://127.0.0.1:{server.port}/ (open it now)", flush=True)
        progress = _Progress(cfg, enabled=True)
        restore = _install_signal_handlers(pipeline)
        try:
            report = pipeline.run(on_tick=progress.tick)
        finally:
            restore()
            progress.close()
            if server is not None and not hold:
                server.stop()

        entries = client.xrange(key, min=f"({since.decode()}", max="+")
        client.close()
    types = Counter(fields[b"type"].decode() for _, fields in entries)
    tracks = types.get("track.started", 0)
    print()
    print("maskstream demo: summary")
    print(
        f"  frames        {report.frames} in {report.elapsed_s:.1f} s ({report.fps:.2f} fps, model on {pipeline.detector.device if pipeline.detector else cfg.model.device})"
    )
    print(f"  tracks        {tracks}")
    print(f"  events        {len(entries)} in Redis stream {key}")
    for kind, count in sorted(types.items()):
        print(f"    {kind:<20}{count}")
    print(f"  annotated     {out_dir / 'annotated.mp4'}")
    print(f"  events file   {out_dir / 'events.jsonl'}")
    print()
    if private:
        print("Redis was private to the demo and is gone; to keep events and follow them live, run:")
        print("  redis-server --port 6379 &  REDIS_URL=redis://localhost:6379/0 maskstream demo")
        print(f"  maskstream tail --redis redis://localhost:6379/0 --source {cfg.sources[0].id} --from-start")
    else:
        print("Follow the events live (in another terminal, while a run is going):")
        print(f"  maskstream tail --redis {redact_url(url)} --source {cfg.sources[0].id} --from-start")
    for stats in report.failed:
        print(f"maskstream demo: source {stats.source_id}: {stats.errors[0]}", file=sys.stderr)
    if server is not None and hold:
        _hold(server.port)
        server.stop()
    elif server is not None:
        print(f"The live page was at http://127.0.0.1:{server.port}/; `--hold` keeps it up after the clip ends.")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
