"""The one retry policy: capped exponential backoff with jitter (live-source reconnects, the Redis publisher's
retries, the consumer SDK's reconnects). Pure Python, so the consumer SDK can use it without pydantic."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Wait `initial_s * 2**retry`, at most `max_s`, spread by ±`jitter` (a fraction) so that many clients
    that failed together do not retry in lockstep."""

    initial_s: float
    max_s: float
    jitter: float = 0.2

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry` (0 = the first retry)."""
        base = min(self.max_s, self.initial_s * 2 ** min(max(retry, 0), 60))
        spread = (rng or random).uniform(-1.0, 1.0) * self.jitter
        return max(0.0, base * (1.0 + spread))
