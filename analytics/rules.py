"""Zone and line rules of one source: a small state machine per (track, zone) and (track, line).

Each frame, every observed track is judged against every zone (inside or not) and line (which side) by its
reference (mask share, mask footprint or box bottom centre). A new state must hold for `min_frames` observed
frames in a row before it counts, and the event is then dated at the first of those frames, so jitter at an edge
does not flap and timing stays exact. Frames where a track is not observed (occlusion) change nothing: a person
hidden behind a van is still in the zone. A track that ends while inside a zone exits at its last observation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from analytics import geometry as geo
from pipeline.config.zones import LineConfig, ZoneConfig
from pipeline.items import RegionOverlay, ZoneEvent


@dataclass(slots=True, frozen=True)
class Moment:
    """When something happened: a frame of the source."""

    frame_index: int
    pts: float | None
    capture_time: float

    @property
    def t(self) -> float:
        """Stream time in seconds: pts when the stream has them (files, cameras), else the wall clock."""
        return self.pts if self.pts is not None else self.capture_time


class ObjectView:
    """One observed track in one frame: its box and its mask as a crop of the box window at (x0, y0)."""

    def __init__(
        self, track_id: int, label: int, box: np.ndarray, crop: np.ndarray | None, x0: int = 0, y0: int = 0
    ) -> None:
        self.track_id = track_id
        self.label = label
        self.box = box
        self.crop = crop
        self.x0, self.y0 = x0, y0

    @cached_property
    def footprint(self) -> geo.Point | None:
        return geo.footprint_point(self.crop, self.x0, self.y0) if self.crop is not None else None

    @cached_property
    def centroid(self) -> geo.Point | None:
        return geo.mask_centroid(self.crop, self.x0, self.y0) if self.crop is not None else None

    def point(self, reference: str) -> geo.Point | None:
        """The single point standing for the object (for `mask`: the mask's centroid)."""
        if reference == "box_bottom" or self.crop is None:
            return geo.box_bottom_centre(self.box)
        return self.footprint if reference == "footprint" else self.centroid


@dataclass(slots=True)
class _Pending:
    """A state seen but not yet held for `min_frames` observations."""

    value: object = None
    count: int = 0
    since: Moment | None = None

    def see(self, value: object, now: Moment) -> None:
        if value != self.value:
            self.value, self.count, self.since = value, 0, now
        self.count += 1

    def clear(self) -> None:
        self.value, self.count, self.since = None, 0, None


@dataclass(slots=True)
class _ZoneTrack:
    inside: bool = False
    label: int = 0
    entered: Moment | None = None
    pending: _Pending = field(default_factory=_Pending)


@dataclass(slots=True)
class _LineTrack:
    side: int | None = None  # +1 left of the line, -1 right, None unknown (not yet seen alongside it)
    pending: _Pending = field(default_factory=_Pending)


@dataclass(slots=True)
class _Zone:
    cfg: ZoneConfig
    polygon: np.ndarray
    classes: frozenset[int] | None
    tracks: dict[int, _ZoneTrack] = field(default_factory=dict)
    occupancy: dict[int, int] = field(default_factory=dict)
    entries: int = 0
    dwelled: set[int] = field(default_factory=set)  # tracks already sent `zone.dwell` (once per track and zone)


@dataclass(slots=True)
class _Line:
    cfg: LineConfig
    a: np.ndarray
    b: np.ndarray
    in_sign: int
    classes: frozenset[int] | None
    tracks: dict[int, _LineTrack] = field(default_factory=dict)
    crossings: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0})


def class_ids(names: list[str] | None, class_names: Sequence[str], field_path: str) -> frozenset[int] | None:
    """Class names of a zone/line → indices of the model's classes; an unknown name is a ValueError naming it."""
    if names is None:
        return None
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [name for name in names if name not in index]
    if unknown:
        raise ValueError(f"{field_path}.classes: unknown class {unknown[0]!r} (the model knows {list(class_names)})")
    return frozenset(index[name] for name in names)


class RegionRules:
    """Zones and lines of one source, with the state of every track against each of them."""

    def __init__(
        self, zones: list[ZoneConfig], lines: list[LineConfig], class_names: Sequence[str], field_prefix: str = ""
    ) -> None:
        self.zone_cfgs, self.line_cfgs = zones, lines
        self.class_names = list(class_names)
        self.prefix = field_prefix
        self._zone_classes = [
            class_ids(z.classes, class_names, f"{field_prefix}zones[{i}]") for i, z in enumerate(zones)
        ]
        self._line_classes = [
            class_ids(ln.classes, class_names, f"{field_prefix}lines[{i}]") for i, ln in enumerate(lines)
        ]
        self.size: tuple[int, int] | None = None
        self.zones: list[_Zone] = []
        self.lines: list[_Line] = []

    def resolve(self, width: int, height: int) -> list[str]:
        """Place zones and lines in a width x height frame (fractions become pixels). Returns one problem per
        zone/line left out because a point lies outside the frame (state of the others is kept on a re-resolve)."""
        if self.size == (width, height):
            return []
        self.size = (width, height)
        problems: list[str] = []
        old_zones = {z.cfg.name: z for z in self.zones}
        old_lines = {line.cfg.name: line for line in self.lines}
        self.zones, self.lines = [], []
        for index, cfg in enumerate(self.zone_cfgs):
            points = cfg.pixel_points(width, height)
            if (problem := _outside(points, width, height, f"{self.prefix}zones[{index}].points")) is not None:
                problems.append(problem)
                continue
            zone = _Zone(cfg, points, self._zone_classes[index])
            if (old := old_zones.get(cfg.name)) is not None:
                zone.tracks, zone.occupancy = old.tracks, old.occupancy
                zone.entries, zone.dwelled = old.entries, old.dwelled
            self.zones.append(zone)
        for index, line_cfg in enumerate(self.line_cfgs):
            points = line_cfg.pixel_points(width, height)
            if (problem := _outside(points, width, height, f"{self.prefix}lines[{index}].points")) is not None:
                problems.append(problem)
                continue
            side = 1 if line_cfg.in_side == "left" else -1
            line = _Line(line_cfg, points[0], points[1], side, self._line_classes[index])
            if (old_line := old_lines.get(line_cfg.name)) is not None:
                line.tracks, line.crossings = old_line.tracks, old_line.crossings
            self.lines.append(line)
        return problems

    # --- per frame ----------------------------------------------------------------------------------------------
    def step(self, now: Moment, objects: Iterable[ObjectView]) -> list[ZoneEvent]:
        """Judge this frame's observed tracks; return the events it completes (entries, exits, dwell, crossings,
        then occupancy changes)."""
        events: list[ZoneEvent] = []
        for obj in objects:
            for zone in self.zones:
                if zone.classes is None or obj.label in zone.classes:
                    self._zone_step(zone, obj, now, events)
            for line in self.lines:
                if line.classes is None or obj.label in line.classes:
                    self._line_step(line, obj, now, events)
        events.extend(self._occupancy_changes(now))
        return events

    def end_tracks(self, ended: Iterable[tuple[int, Moment]], now: Moment | None = None) -> list[ZoneEvent]:
        """Tracks that ended (track id, last observation): exits from the zones they were in; state forgotten."""
        events: list[ZoneEvent] = []
        latest: Moment | None = None
        for track_id, last_seen in ended:
            if latest is None or last_seen.frame_index > latest.frame_index:
                latest = last_seen
            for zone in self.zones:
                zone.dwelled.discard(track_id)
                state = zone.tracks.pop(track_id, None)
                if state is not None and state.inside:
                    events.append(self._exit(zone, track_id, state, last_seen))
            for line in self.lines:
                line.tracks.pop(track_id, None)
        when = now or latest
        if events and when is not None:
            events.extend(self._occupancy_changes(when))
        return events

    def overlay(self) -> list[RegionOverlay]:
        out = [
            RegionOverlay(z.cfg.name, "zone", z.polygon, f"{z.cfg.name}: {sum(z.occupancy.values())}")
            for z in self.zones
        ]
        out += [
            RegionOverlay(
                line.cfg.name,
                "line",
                np.stack([line.a, line.b]),
                f"{line.cfg.name}: in {line.crossings['in']} / out {line.crossings['out']}",
            )
            for line in self.lines
        ]
        return out

    # --- zones -------------------------------------------------------------------------------------------------
    def _inside(self, zone: _Zone, obj: ObjectView) -> bool:
        reference = zone.cfg.reference
        if reference == "mask" and obj.crop is not None:
            return geo.mask_fraction_inside(obj.crop, obj.x0, obj.y0, zone.polygon) >= zone.cfg.min_overlap
        point = obj.point(reference)
        return point is not None and geo.point_in_polygon(point, zone.polygon)

    def _zone_step(self, zone: _Zone, obj: ObjectView, now: Moment, events: list[ZoneEvent]) -> None:
        state = zone.tracks.get(obj.track_id)
        inside = self._inside(zone, obj)
        if state is None:
            if not inside:
                return  # tracks never seen inside cost no memory
            state = zone.tracks[obj.track_id] = _ZoneTrack(label=obj.label)
        if inside == state.inside:
            state.pending.clear()
        else:
            state.pending.see(inside, now)
            if state.pending.count >= zone.cfg.min_frames:
                since = state.pending.since or now
                state.pending.clear()
                if inside:
                    state.inside, state.label, state.entered = True, obj.label, since
                    zone.entries += 1
                    events.append(_event("zone.entered", zone.cfg.name, since, obj.track_id, obj.label))
                else:
                    events.append(self._exit(zone, obj.track_id, state, since))
                    del zone.tracks[obj.track_id]
                    return
        dwell_s = zone.cfg.dwell_s
        if state.inside and dwell_s is not None and obj.track_id not in zone.dwelled and state.entered is not None:
            stayed = now.t - state.entered.t
            if stayed >= dwell_s:
                zone.dwelled.add(obj.track_id)
                events.append(_event("zone.dwell", zone.cfg.name, now, obj.track_id, obj.label, dwell_s=stayed))

    @staticmethod
    def _exit(zone: _Zone, track_id: int, state: _ZoneTrack, when: Moment) -> ZoneEvent:
        state.inside = False
        stayed = max(0.0, when.t - state.entered.t) if state.entered is not None else 0.0
        return _event("zone.exited", zone.cfg.name, when, track_id, state.label, dwell_s=stayed)

    def _occupancy_changes(self, now: Moment) -> list[ZoneEvent]:
        events = []
        for zone in self.zones:
            counts: dict[int, int] = {}
            for state in zone.tracks.values():
                if state.inside:
                    counts[state.label] = counts.get(state.label, 0) + 1
            if counts != zone.occupancy:
                zone.occupancy = counts
                events.append(
                    _event("zone.occupancy", zone.cfg.name, now, None, None, counts=dict(sorted(counts.items())))
                )
        return events

    # --- lines -------------------------------------------------------------------------------------------------
    def _side(self, line: _Line, obj: ObjectView) -> int | None:
        """+1 / -1 while the object is alongside the segment, None when beyond its ends or exactly on it."""
        reference = line.cfg.reference
        point = obj.point(reference)
        if point is None or not 0.0 <= geo.along_line(point, line.a, line.b) <= 1.0:
            return None
        if reference == "mask" and obj.crop is not None:
            return 1 if geo.mask_fraction_left(obj.crop, obj.x0, obj.y0, line.a, line.b) >= 0.5 else -1
        value = geo.side_of_line(point, line.a, line.b)
        return None if value == 0 else (1 if value > 0 else -1)

    def _line_step(self, line: _Line, obj: ObjectView, now: Moment, events: list[ZoneEvent]) -> None:
        side = self._side(line, obj)
        state = line.tracks.get(obj.track_id)
        if side is None:
            if state is not None:  # beyond an end: walking around the line is no crossing
                del line.tracks[obj.track_id]
            return
        if state is None:
            state = line.tracks[obj.track_id] = _LineTrack()
        if side == state.side:
            state.pending.clear()
            return
        state.pending.see(side, now)
        if state.pending.count < line.cfg.min_frames:
            return
        since = state.pending.since or now
        state.pending.clear()
        previous, state.side = state.side, side
        if previous is not None:
            direction = "in" if side == line.in_sign else "out"
            line.crossings[direction] += 1
            events.append(_event("line.crossed", line.cfg.name, since, obj.track_id, obj.label, direction=direction))


def _outside(points: np.ndarray, width: int, height: int, field_path: str) -> str | None:
    for index, (x, y) in enumerate(points):
        if not (0 <= x <= width and 0 <= y <= height):
            return f"{field_path}: point {index} ({x:g}, {y:g}) is outside the {width}x{height} frame; left out"
    return None


def _event(kind: str, region: str, when: Moment, track_id: int | None, label: int | None, **extra) -> ZoneEvent:
    return ZoneEvent(
        kind=kind,  # type: ignore[arg-type]
        region=region,
        frame_index=when.frame_index,
        pts=when.pts,
        capture_time=when.capture_time,
        track_id=track_id,
        label=label,
        **extra,
    )
