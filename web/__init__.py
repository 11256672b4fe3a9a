"""The live page: every source's annotated picture, state and numbers, and the event feed, in a browser.

Served on the metrics port by `pipeline.http.HealthServer` (docs/LIVE.md). Its data comes from two sinks the
pipeline feeds like any other: `sinks.live_view.LiveView` (latest result per source) and
`sinks.live_events.EventFeed` (the published events), plus the run's counters (`pipeline.stats.RunStats`).
"""

from __future__ import annotations

from web.app import WebApp

__all__ = ["WebApp"]
