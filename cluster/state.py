"""The controller's state, kept in Redis so a restarted controller (or driver) carries on where it stopped.

Per job, two hashes under one hash tag (one Redis Cluster slot): `maskstream:cluster:{JOB}:sources` (source id →
JSON of `SourceState`) and `...:workers` (worker actor name → JSON of when it was created). Every change is one
HSET of the source that changed; nothing else in the controller needs to survive.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import redis

FINAL = ("done", "failed")


@dataclass
class SourceState:
    state: str = "pending"  # pending → running → done | failed (final); running → pending when moved / lost
    worker: str | None = None  # actor name while running
    epoch: int = 0  # fencing token of the current ownership
    attempts: int = 0  # failures of the source itself (not of its worker)
    failed_on: list[str] = field(default_factory=list)
    moves: int = 0  # times it changed worker (worker lost or hand-over)
    handover: str | None = None  # why the next start is a hand-over: moved / worker_lost
    error: str | None = None
    cost: float = 1.0
    lost_at: float | None = None  # when its worker was found lost (reassignment timing)

    @property
    def final(self) -> bool:
        return self.state in FINAL


class JobStore:
    def __init__(self, client: redis.Redis, job_id: str) -> None:
        self.client = client
        self.job_id = job_id
        self.sources_key = f"maskstream:cluster:{{{job_id}}}:sources"
        self.workers_key = f"maskstream:cluster:{{{job_id}}}:workers"

    def load_sources(self) -> dict[str, SourceState]:
        raw = self.client.hgetall(self.sources_key)
        return {key.decode(): SourceState(**json.loads(value)) for key, value in raw.items()}

    def save_source(self, source_id: str, state: SourceState) -> None:
        self.client.hset(self.sources_key, source_id, json.dumps(asdict(state)))

    def load_workers(self) -> dict[str, float]:
        return {key.decode(): float(value) for key, value in self.client.hgetall(self.workers_key).items()}

    def add_worker(self, name: str, created: float) -> None:
        self.client.hset(self.workers_key, name, created)

    def remove_worker(self, name: str) -> None:
        self.client.hdel(self.workers_key, name)

    def next_worker_number(self) -> int:
        return int(self.client.incr(f"maskstream:cluster:{{{self.job_id}}}:worker_seq"))

    def clear(self) -> None:
        """The job is finished: forget it (a rerun processes again; the fence drops every id already written)."""
        self.client.delete(self.sources_key, self.workers_key, f"maskstream:cluster:{{{self.job_id}}}:worker_seq")
