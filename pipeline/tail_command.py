"""`maskstream tail`: print events from Redis as they arrive, one line each (or JSON with --json)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from typing import Any, TextIO

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from consumer import EventConsumer, EventTail
from consumer.group import RECONNECT_BACKOFF
from pipeline.events import DEFAULT_STREAM_KEY
from pipeline.redis_client import check_redis, describe_redis_error, redis_from_url


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tail",
        help="print events from Redis live",
        description="Print maskstream events from Redis Streams as they arrive.",
    )
    parser.add_argument(
        "--redis",
        default=os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
        metavar="URL",
        help="redis:// or rediss:// URL (default: $REDIS_URL or redis://localhost:6379/0)",
    )
    parser.add_argument(
        "--source",
        action="append",
        metavar="ID",
        help="source id or pattern (cam*); repeat for several (default: every source)",
    )
    parser.add_argument(
        "--group",
        metavar="G",
        help="read as a member of consumer group G (created if missing; events are acked). Default: read only",
    )
    parser.add_argument("--consumer", default=f"tail-{socket.gethostname()}-{os.getpid()}", help=argparse.SUPPRESS)
    parser.add_argument("--from-start", action="store_true", help="start at the oldest retained event, not new ones")
    parser.add_argument("--json", action="store_true", help="one JSON event per line (for machines)")
    parser.add_argument("--key-template", default=DEFAULT_STREAM_KEY, help="stream key template (as in the config)")
    parser.add_argument("--tls-ca-cert", metavar="FILE", help="CA bundle for rediss:// servers")
    parser.add_argument("--cluster", action="store_true", help="--redis names a node of a Redis Cluster")
    parser.add_argument("-n", "--max-events", type=int, metavar="N", help="exit after N events")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if args.group:
        reader: Any = EventConsumer.from_url(
            args.redis,
            args.group,
            args.consumer,
            args.source,
            start_id="0" if args.from_start else "$",
            key_template=args.key_template,
            tls_ca_cert_file=args.tls_ca_cert,
            block_s=1.0,
            cluster=args.cluster,
        )
    else:
        client = redis_from_url(
            args.redis, socket_timeout_s=11.0, tls_ca_cert_file=args.tls_ca_cert, cluster=args.cluster
        )
        check_redis(client, args.redis)
        reader = EventTail(client, args.source, from_start=args.from_start, key_template=args.key_template)
    shown = 0
    failures = 0
    try:
        while args.max_events is None or shown < args.max_events:
            try:
                events = reader.read()
                failures = 0
            except (RedisConnectionError, RedisTimeoutError) as exc:  # Redis restarting: wait, don't die
                failures += 1
                delay = RECONNECT_BACKOFF.delay(failures - 1)
                print(
                    f"maskstream tail: {describe_redis_error(args.redis, exc)}; retrying in {delay:.1f} s",
                    file=sys.stderr,
                )
                time.sleep(delay)
                continue
            for event in events:
                out.write((json.dumps(event.data) if args.json else format_event(event)) + "\n")
                event.ack()
                shown += 1
                if args.max_events is not None and shown >= args.max_events:
                    break
            out.flush()
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    return 0


def format_event(event: Any) -> str:
    """One human line: type, source, frame, then what the type has (track, class, score, bbox, mask area...)."""
    data = event.data
    parts = [f"{data['type']:<19}", f"{data['source_id']}", f"frame={_or_dash(data.get('frame_index'))}"]
    if data["type"].startswith("track."):
        x1, y1, x2, y2 = data["bbox"]
        area = event.mask_area()
        parts += [
            f"track={data['track_id']}",
            f"{data['class_name']}",
            f"score={data['score']:.2f}",
            f"bbox=[{x1:.0f},{y1:.0f},{x2:.0f},{y2:.0f}]",
            f"mask_area={_or_dash(area)}",
        ]
        if data["type"] == "track.ended":
            parts += [f"hits={data['hits']}", f"duration={data['duration_s']:.1f}s"]
    elif data["type"].startswith("stream."):
        if data.get("reason"):
            parts.append(f"reason={data['reason']}")
        info = data.get("info") or {}
        parts += [f"{k}={v}" for k, v in info.items() if k in ("url", "width", "height", "fps", "codec")]
    elif data["type"] == "frame.summary":
        parts += [f"detections={data['detections']}", f"tracks={len(data['track_ids'])}"]
    elif data["type"] == "zone.occupancy":
        parts += [f"zone={data['zone']}", f"total={data['total']}"] + [f"{k}={v}" for k, v in data["counts"].items()]
    elif data["type"].startswith("zone.") or data["type"] == "line.crossed":
        region = f"line={data['line']}" if data["type"] == "line.crossed" else f"zone={data['zone']}"
        parts += [region, f"track={data['track_id']}", f"{data['class_name']}"]
        if "direction" in data:
            parts.append(f"direction={data['direction']}")
        if "dwell_s" in data:
            parts.append(f"dwell={data['dwell_s']:.1f}s")
    elif data["type"] == "publisher.dropped":
        parts += [f"count={data['count']}", f"ids={data['first_event_id']}..{data['last_event_id']}"]
    return " ".join(parts)


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)
