"""Prometheus metrics of the controller (`maskstream run --ray`); the workers export the pipeline's own."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SOURCES = Gauge("maskstream_cluster_sources", "Sources of the job by state", ["state"])
SOURCES_WAITING = Gauge("maskstream_cluster_sources_waiting", "Sources waiting for room on a worker")
WORKERS = Gauge("maskstream_cluster_workers", "Worker actors: usable now; lost (counter-like, since start)", ["state"])
REASSIGNMENTS = Counter(
    "maskstream_cluster_reassignments_total",
    "Sources restarted elsewhere: reason=worker_lost, moved (a worker joined), failed (the source itself)",
    ["reason"],
)
