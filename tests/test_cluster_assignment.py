"""Rendezvous placement with bounded load: deterministic, within capacity, stable when workers come and go."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.assignment import assign, moves_after_change, source_cost

ids = st.lists(st.text("abcdefgh0123456789", min_size=1, max_size=6), min_size=1, max_size=40, unique=True)


def test_cost_is_the_pixel_rate_against_720p30() -> None:
    assert source_cost(None) == 1.0
    assert source_cost(15, 1280, 720) == 0.5
    assert source_cost(30, 1920, 1080) == 2.25
    assert source_cost(60, 640, 360) == 0.25  # above 30 fps costs no more: the worker paces to what it manages


@given(ids, st.integers(1, 6))
@settings(max_examples=60, deadline=None)
def test_placement_is_deterministic_and_never_exceeds_capacity(sources: list[str], n_workers: int) -> None:
    costs = {s: 1.0 for s in sources}
    workers = [f"w{i}" for i in range(n_workers)]
    first = assign(costs, workers, capacity=4.0)
    assert first == assign(dict(reversed(list(costs.items()))), list(reversed(workers)), capacity=4.0)
    loads = first.load(costs)
    assert all(load <= 4.0 for load in loads.values())
    assert set(first.owner) | set(first.waiting) == set(sources) and not set(first.owner) & set(first.waiting)
    assert len(first.waiting) == max(0, len(sources) - 4 * n_workers)  # sources wait only when all are full


def test_load_is_balanced_within_the_bound() -> None:
    costs = {f"cam{i}": 1.0 for i in range(30)}
    loads = assign(costs, ["a", "b", "c"], capacity=100).load(costs)
    assert max(loads.values()) <= 1.25 * 10


def test_a_joining_worker_takes_about_a_share_and_nothing_else_moves() -> None:
    costs = {f"cam{i}": 1.0 for i in range(200)}
    before = assign(costs, ["a", "b", "c"], capacity=1000, balance=10)
    moves = moves_after_change(costs, before.owner, ["a", "b", "c", "d"], capacity=1000)
    assert set(moves.values()) == {"d"}  # every move goes to the newcomer
    assert 25 <= len(moves) <= 75  # about 1/4 of 200


def test_a_leaving_worker_gives_up_only_its_own_sources() -> None:
    costs = {f"cam{i}": 1.0 for i in range(60)}
    before = assign(costs, ["a", "b", "c"], capacity=100)
    survivors = {s: w for s, w in before.owner.items() if w != "c"}
    after = assign(costs, ["a", "b"], capacity=100, keep=survivors)
    assert all(after.owner[s] == w for s, w in survivors.items())
    assert set(after.owner) == set(costs)


def test_a_source_avoids_workers_it_failed_on_while_others_have_room() -> None:
    costs = {"cam": 1.0}
    first = assign(costs, ["a", "b", "c"], capacity=4).owner["cam"]
    second = assign(costs, ["a", "b", "c"], capacity=4, avoid={"cam": [first]}).owner["cam"]
    assert second != first
    assert assign(costs, [first], capacity=4, avoid={"cam": [first]}).owner["cam"] == first
