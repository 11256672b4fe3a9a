"""The JSON views of the live page's API (`/api/`): plain dicts built from the run's counters and the event feed.

Every string that may carry a URL or an error message goes through `pipeline.redact`, so no camera or Redis
credentials ever reach the page or a script reading the API.
"""

from __future__ import annotations

import time
from typing import Any

from pipeline.events import EVENT_TYPES
from pipeline.redact import redact_text, redact_url
from pipeline.stats import SourceStats
from sinks.live_events import EventFeed
from sinks.live_view import LiveView

# The page's names for the run's source states (pipeline/stats.py): what an operator asks is "is it connected?"
_DISPLAY_STATE = {"opening": "connecting", "running": "connected", "reconnecting": "reconnecting"}


def source_view(stats: SourceStats, view: LiveView, feed: EventFeed) -> dict[str, Any]:
    """One source as the page and `/api/sources` show it."""
    p50, p99 = stats.latency_percentile(0.5), stats.latency_percentile(0.99)
    reason = stats.state_reason or (stats.errors[-1] if stats.errors else None) or stats.end_reason
    info = stats.info
    return {
        "id": stats.source_id,
        "url": redact_url(str(info["url"])) if info.get("url") else None,
        "live": stats.live,
        "state": _DISPLAY_STATE.get(stats.state, stats.state),
        "reason": redact_text(reason) if reason and stats.state not in ("running", "opening") else None,
        "fps": round(stats.fps(), 2),
        "frames": stats.frames_done,
        "drops": stats.frames_dropped,
        "latency_p50_s": round(p50, 3) if p50 is not None else None,
        "latency_p99_s": round(p99, 3) if p99 is not None else None,
        "active_tracks": view.active_tracks(stats.source_id),
        "events_per_s": round(feed.rate(stats.source_id), 2),
        "events": sum(stats.events.values()),
        "width": info.get("width"),
        "height": info.get("height"),
        "image_seq": view.seq(stats.source_id),
    }


def status_view(
    sources: dict[str, SourceStats], healthy: bool, ready: tuple[bool, str], started: float, viewers: int
) -> dict[str, Any]:
    return {
        "healthy": healthy,
        "ready": ready[0],
        "ready_reason": redact_text(ready[1]),
        "uptime_s": round(time.monotonic() - started, 1),
        "sources": len(sources),
        "frames": sum(s.frames_done for s in sources.values()),
        "viewers": viewers,
        "event_types": list(EVENT_TYPES),
    }


def feed_event(seq: int, event: dict[str, Any], masks: bool) -> dict[str, Any]:
    """An event as published, numbered by the feed; without its mask (the bulky RLE) unless asked for."""
    shown = dict(event) if masks else {k: v for k, v in event.items() if k != "mask"}
    if isinstance(shown.get("reason"), str):
        shown["reason"] = redact_text(shown["reason"])
    info = shown.get("info")
    if isinstance(info, dict) and isinstance(info.get("url"), str):
        shown["info"] = {**info, "url": redact_url(info["url"])}
    shown["seq"] = seq
    return shown


def event_matches(event: dict[str, Any], sources: set[str] | None, types: set[str] | None) -> bool:
    """Filter by source ids and event types; a type ending in `.` (e.g. `track.`) matches the family."""
    if sources and event.get("source_id") not in sources:
        return False
    if not types:
        return True
    kind = str(event.get("type", ""))
    return kind in types or any(t.endswith(".") and kind.startswith(t) for t in types)
