"""The ground-plane world both camera modes share: roads and walkways as straight bands, lanes along them,
and the traffic on the lanes (spawning, cruising, following, pausing, leaving).

Coordinates are metres on the ground. Everything random comes from the generator handed in, so a scene
is a pure function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synth.appearance import PersonLook, VehicleLook
from synth.categories import BICYCLE, CAR, PERSON, TRUCK

COARSE_STEP = 0.2  # seconds: the longest step `advance` takes (following distances stay sane)
MAX_TRACK_ID = 999  # MOTS ids are class*1000 + track, so a clip holds at most 999 tracks


@dataclass(slots=True)
class Strip:
    """A straight band of ground (road, sidewalk): centre line through `centre` along unit `direction`."""

    centre: np.ndarray
    direction: np.ndarray
    half_width: float
    kind: str  # "road" | "sidewalk"

    @property
    def normal(self) -> np.ndarray:
        return np.array([-self.direction[1], self.direction[0]])


@dataclass(slots=True)
class Lane:
    """A path actors follow: points origin + t * direction for t in [t_enter, t_exit]."""

    origin: np.ndarray
    direction: np.ndarray
    kind: str  # "vehicle" | "bike" | "walk"
    rate: float  # spawns per second
    t_enter: float = 0.0
    t_exit: float = 0.0
    lateral_jitter: float = 0.0

    def point(self, t: float) -> np.ndarray:
        return self.origin + self.direction * t


@dataclass(slots=True)
class Actor:
    """Something that moves (or is parked) and is annotated: a person, a car, a truck, a bicycle (+ rider)."""

    track_id: int
    category: int
    look: PersonLook | VehicleLook
    position: np.ndarray
    direction: np.ndarray
    speed: float = 0.0
    cruise: float = 0.0
    lane: int = -1
    t: float = 0.0
    lateral: float = 0.0
    phase: float = 0.0
    pause_left: float = 0.0
    rider_id: int = 0  # bicycles: the track id of the person riding it (0: no rider)
    rider_look: PersonLook | None = None
    wander: float = field(default=0.0)
    grouped: bool = False  # walks with others: keeps their pace, never stops alone

    @property
    def length(self) -> float:
        return self.look.length if isinstance(self.look, VehicleLook) else 0.5

    @property
    def height(self) -> float:
        if isinstance(self.look, PersonLook):
            return self.look.height
        return self.look.height + (0.9 if self.rider_look is not None else 0.0)


def clip_line(origin: np.ndarray, direction: np.ndarray, region: np.ndarray) -> tuple[float, float] | None:
    """Parameter range [t0, t1] of the line origin + t*direction inside the convex polygon `region`
    (counter-clockwise or clockwise vertices), or None if the line misses it (Cyrus-Beck clipping)."""
    t0, t1 = -np.inf, np.inf
    centroid = region.mean(axis=0)
    for a, b in zip(region, np.roll(region, -1, axis=0), strict=True):
        edge = b - a
        inward = np.array([-edge[1], edge[0]])
        if np.dot(inward, centroid - a) < 0:
            inward = -inward
        denom = float(np.dot(inward, direction))
        dist = float(np.dot(inward, origin - a))
        if abs(denom) < 1e-12:
            if dist < 0:
                return None
            continue
        t = -dist / denom
        if denom > 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
    if t0 >= t1:
        return None
    return float(t0), float(t1)


class Traffic:
    """Actors on lanes: they enter at a lane's start, keep their distance, pause (people), and leave at its end."""

    def __init__(
        self,
        rng: np.random.Generator,
        lanes: list[Lane],
        region: np.ndarray,
        fps: float,
        *,
        margin: float = 6.0,
        max_actors: int = 60,
        truck_share: float = 0.28,
    ) -> None:
        self.rng = rng
        self.dt = 1.0 / fps
        self.max_actors = max_actors
        self.truck_share = truck_share
        self.actors: list[Actor] = []
        self.parked: list[Actor] = []
        self.next_track_id = 1
        self.lanes: list[Lane] = []
        for lane in lanes:
            span = clip_line(lane.origin, lane.direction, region)
            if span is None or span[1] - span[0] + 2 * margin < 2.0:  # misses the region or barely grazes it
                continue
            lane.t_enter, lane.t_exit = span[0] - margin, span[1] + margin
            self.lanes.append(lane)

    # ---- spawning -------------------------------------------------------------------------------------
    def _new_id(self) -> int:
        track_id = self.next_track_id
        self.next_track_id += 1
        return track_id

    def ids_left(self, needed: int) -> bool:
        return self.next_track_id + needed - 1 <= MAX_TRACK_ID

    def park(self, category: int, position, direction, *, with_rider: bool = False) -> Actor | None:
        """A static annotated object (parked car, bicycle at a rack)."""
        if not self.ids_left(1):
            return None
        look = (
            VehicleLook.random_truck(self.rng)
            if category == TRUCK
            else (VehicleLook.random_bicycle(self.rng) if category == BICYCLE else VehicleLook.random_car(self.rng))
        )
        actor = Actor(self._new_id(), category, look, np.asarray(position, float), np.asarray(direction, float))
        self.parked.append(actor)
        return actor

    def _spawn(self, lane_index: int, t: float, leader: Actor | None = None) -> Actor | None:
        """A new actor at parameter `t` of a lane; `leader`: walk beside that person (same pace)."""
        lane = self.lanes[lane_index]
        rng = self.rng
        if lane.kind == "walk":
            category, look = PERSON, PersonLook.random(rng)
            cruise = float(rng.uniform(0.9, 1.8)) * (0.75 if look.height < 1.4 else 1.0)
            if leader is not None:
                cruise = leader.cruise
        elif lane.kind == "bike":
            category, look = BICYCLE, VehicleLook.random_bicycle(rng)
            cruise = float(rng.uniform(3.0, 6.5))
        elif rng.random() < self.truck_share:
            category, look = TRUCK, VehicleLook.random_truck(rng)
            cruise = float(rng.uniform(5.0, 10.0))
        else:
            category, look = CAR, VehicleLook.random_car(rng)
            cruise = float(rng.uniform(6.0, 14.0))
        needed = 2 if category == BICYCLE else 1
        if len(self.actors) >= self.max_actors or not self.ids_left(needed):
            return None
        lateral = float(rng.uniform(-lane.lateral_jitter, lane.lateral_jitter))
        if leader is not None:
            side = 1.0 if leader.lateral < 0 else -1.0
            lateral = leader.lateral + side * float(rng.uniform(0.45, 0.7))
        actor = Actor(
            self._new_id(), category, look, lane.point(t), lane.direction.copy(), speed=cruise, cruise=cruise,
            lane=lane_index, t=t, lateral=lateral, phase=float(rng.uniform(0, 2 * np.pi)),
            wander=float(rng.uniform(0, 2 * np.pi)),
        )  # fmt: skip
        if category == BICYCLE:
            actor.rider_id = self._new_id()
            actor.rider_look = PersonLook.random(rng, child_fraction=0.0)
        self._place(actor)
        self.actors.append(actor)
        if lane.kind == "walk" and leader is None and rng.random() < 0.25:
            # people often walk in pairs or threes, side by side: close, long occlusions for the tracker
            actor.grouped = True
            for _ in range(int(rng.integers(1, 3))):
                companion = self._spawn(lane_index, t - float(rng.uniform(-0.4, 0.6)), leader=actor)
                if companion is not None:
                    companion.grouped = True
        return actor

    def populate(self) -> None:
        """Fill the lanes as if traffic had been flowing for a while, so frame 0 is not empty."""
        for index, lane in enumerate(self.lanes):
            typical_speed = {"walk": 1.3, "bike": 4.5, "vehicle": 9.0}[lane.kind]
            expected = lane.rate * abs(lane.t_exit - lane.t_enter) / typical_speed
            for t in np.sort(self.rng.uniform(lane.t_enter, lane.t_exit, self.rng.poisson(expected))):
                if self._entry_clear(index, float(t)):
                    self._spawn(index, float(t))

    def _entry_clear(self, lane_index: int, t: float) -> bool:
        if self.lanes[lane_index].kind == "walk":
            return True
        return all(a.lane != lane_index or abs(a.t - t) > a.length + 4.0 for a in self.actors)

    # ---- motion ---------------------------------------------------------------------------------------
    def _place(self, actor: Actor) -> None:
        lane = self.lanes[actor.lane]
        normal = np.array([-lane.direction[1], lane.direction[0]])
        sway = 0.15 * np.sin(actor.wander + 0.3 * actor.t) if lane.kind == "walk" else 0.0
        actor.position = lane.point(actor.t) + normal * (actor.lateral + sway)

    def step(self, dt: float | None = None) -> None:
        """Advance by one frame interval (or `dt` seconds; keep it well under a second)."""
        dt = self.dt if dt is None else dt
        rng = self.rng
        by_lane: dict[int, list[Actor]] = {}
        for actor in self.actors:
            by_lane.setdefault(actor.lane, []).append(actor)
        for lane_index, members in by_lane.items():
            lane = self.lanes[lane_index]
            members.sort(key=lambda a: a.t)
            for i, actor in enumerate(members):
                if lane.kind == "walk":
                    self._walk(actor, dt)
                else:
                    leader = members[i + 1] if i + 1 < len(members) else None
                    self._drive(actor, leader, dt)
                actor.t += actor.speed * dt
                self._place(actor)
                stride = 0.42 * actor.look.height if lane.kind == "walk" else 2.2 * 2.4
                actor.phase = (actor.phase + np.pi * actor.speed * dt / stride) % (2 * np.pi)
        self.actors = [a for a in self.actors if a.t <= self.lanes[a.lane].t_exit]
        for index, lane in enumerate(self.lanes):
            if rng.random() < lane.rate * dt and self._entry_clear(index, lane.t_enter):
                self._spawn(index, lane.t_enter)

    def _walk(self, actor: Actor, dt: float) -> None:
        if actor.pause_left > 0:
            actor.pause_left -= dt
            actor.speed = 0.0 if actor.pause_left > 0 else actor.cruise
        elif not actor.grouped and self.rng.random() < 0.015 * dt:  # now and then someone stops (phone, waiting)
            actor.pause_left = float(self.rng.uniform(1.0, 5.0))

    @staticmethod
    def _drive(actor: Actor, leader: Actor | None, dt: float) -> None:
        target = actor.cruise
        if leader is not None:
            gap = (leader.t - leader.length / 2) - (actor.t + actor.length / 2)
            safe = 2.5 + actor.speed * 1.2
            if gap < safe:
                target = min(target, leader.speed * max(0.0, gap / safe))
        rate = 3.0 if target > actor.speed else 6.0  # brake harder than accelerate
        actor.speed += float(np.clip(target - actor.speed, -rate * dt, rate * dt))
        actor.speed = max(actor.speed, 0.0)

    def all_actors(self) -> list[Actor]:
        return self.parked + self.actors
