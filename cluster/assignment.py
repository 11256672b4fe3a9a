"""Which worker runs which source: rendezvous hashing with bounded load, deterministic and stable.

Every (source, worker) pair gets a pseudo-random weight from a hash of both names; a source goes to the worker of
highest weight that still has room. Because a source's ranking of workers never depends on the other workers, a
worker joining takes over only the sources that now rank it first (about 1/N of them) and a worker leaving only
gives up its own: the rest stay where they are. "Room" is bounded twice: by the worker's capacity (cost units it
can serve at all; beyond it sources wait) and by a balance bound (`balance` × the mean load), so a hash that
happens to favour one worker cannot pile sources on it.

A source's cost is in units of one 1280x720 stream at 30 fps (`source_cost`); a file with no fps cap counts as
one unit, since it takes whatever the worker gives it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_REFERENCE_PIXELS_PER_S = 1280 * 720 * 30.0


def source_cost(fps_cap: float | None, width: int | None = None, height: int | None = None) -> float:
    """Cost units of a source: its pixel rate against a 720p30 stream; unknown size counts as 720p, no cap as 30."""
    pixels = (width or 1280) * (height or 720)
    return round(pixels * min(fps_cap or 30.0, 30.0) / _REFERENCE_PIXELS_PER_S, 4)


def weight(source_id: str, worker: str) -> int:
    digest = hashlib.blake2b(f"{source_id}\x00{worker}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def ranking(source_id: str, workers: Iterable[str]) -> list[str]:
    """Workers in the order this source prefers them (highest weight first; ties cannot matter: 64-bit hashes)."""
    return sorted(workers, key=lambda worker: weight(source_id, worker), reverse=True)


@dataclass
class Assignment:
    owner: dict[str, str] = field(default_factory=dict)  # source id → worker
    waiting: list[str] = field(default_factory=list)  # sources no worker has room for, in placement order

    def load(self, costs: Mapping[str, float]) -> dict[str, float]:
        loads: dict[str, float] = {}
        for source_id, worker in self.owner.items():
            loads[worker] = loads.get(worker, 0.0) + costs[source_id]
        return loads


def assign(
    costs: Mapping[str, float],
    workers: Iterable[str],
    capacity: float,
    *,
    keep: Mapping[str, str] | None = None,
    avoid: Mapping[str, Iterable[str]] | None = None,
    balance: float = 1.25,
) -> Assignment:
    """Place every source of `costs` on one of `workers`.

    `keep`: sources already running (source → worker) stay put if their worker is in `workers`; only the rest
    are placed. `avoid`: workers a source already failed on; used only if no other worker has room.
    Sources are placed largest first, ties by id, so the result depends on the inputs only.
    """
    workers = sorted(set(workers))
    result = Assignment()
    if not workers:
        result.waiting = sorted(costs, key=lambda s: (-costs[s], s))
        return result
    load = dict.fromkeys(workers, 0.0)
    for source_id, worker in (keep or {}).items():
        if worker in load and source_id in costs:
            result.owner[source_id] = worker
            load[worker] += costs[source_id]
    total = sum(costs.values())
    bound = min(capacity, max(max(costs.values(), default=0.0), balance * total / len(workers)))
    avoid = avoid or {}
    for source_id in sorted(costs, key=lambda s: (-costs[s], s)):
        if source_id in result.owner:
            continue
        cost = costs[source_id]
        ranked = ranking(source_id, workers)
        bad = set(avoid.get(source_id, ()))
        preferred = [w for w in ranked if w not in bad] + [w for w in ranked if w in bad]
        chosen = next((w for w in preferred if load[w] + cost <= bound + 1e-9), None)
        if chosen is None:  # balanced placement is full: any worker within its capacity, least loaded first
            fits = [w for w in preferred if load[w] + cost <= capacity + 1e-9]
            chosen = min(fits, key=lambda w: load[w]) if fits else None
        if chosen is None:
            result.waiting.append(source_id)
            continue
        result.owner[source_id] = chosen
        load[chosen] += cost
    return result


def moves_after_change(
    costs: Mapping[str, float], current: Mapping[str, str], workers: Iterable[str], capacity: float
) -> dict[str, str]:
    """Sources whose owner differs from a fresh placement over `workers` (source → new worker): the graceful
    hand-overs after a worker joined. Stable hashing keeps this to about 1/N of the sources."""
    target = assign(costs, workers, capacity)
    return {s: w for s, w in target.owner.items() if s in current and current[s] != w}
