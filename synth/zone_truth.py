"""True zone and line events of a synthetic clip: the rules run on the exact visible masks and identities.

The simulator knows every object's visible pixels and who it is, so the same `RegionRules` (same zones, lines,
thresholds and `min_frames`) run on them give the events a perfect detector and a perfect tracker would produce.
What the pipeline loses against these comes from detection and tracking, not from the rules. A true track that
is not visible for longer than `gap_s` ends at its last visible frame, as the tracker ends a track after
`tracker.max_lost_s`. Instances flagged `ignore` (too small or hidden to expect a detection) count as unseen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from analytics.rules import Moment, ObjectView, RegionRules
from pipeline.config.zones import RegionsConfig
from pipeline.events import EventBuilder
from synth.categories import NAMES
from synth.frames import Instance

TRUTH_FILE = "events_gt.jsonl"


def synth_class_names() -> list[str]:
    """Index = the simulator's (COCO) category id, as the events' class_id."""
    names = [""] * (max(NAMES) + 1)
    names[0] = "__background__"
    for category, name in NAMES.items():
        names[category] = name
    return names


class TrueEvents:
    """Feed it a clip's frames one by one (`add`), then `finish`; `events` are schema-v1 dicts."""

    def __init__(
        self, regions: RegionsConfig, size: tuple[int, int], fps: float, source_id: str = "synth", gap_s: float = 1.5
    ) -> None:
        width, height = size
        class_names = synth_class_names()
        self.rules = RegionRules(regions.zones, regions.lines, class_names)
        problems = self.rules.resolve(width, height)
        if problems:
            from pipeline.errors import ConfigError

            raise ConfigError(f"config error: {problems[0]}")
        self.builder = EventBuilder(class_names)
        self.source_id, self.fps, self.gap_s = source_id, fps, gap_s
        self.last_seen: dict[int, Moment] = {}
        self.events: list[dict[str, Any]] = []

    def add(self, frame_index: int, instances: Sequence[Instance]) -> None:
        t = frame_index / self.fps
        now = Moment(frame_index, t, t)
        objects = []
        for inst in instances:
            if inst.ignore:
                continue
            x, y, w, h = inst.bbox
            box = np.array([x, y, x + w, y + h], np.float32)
            objects.append(ObjectView(inst.track_id, inst.category_id, box, inst.mask[y : y + h, x : x + w], x, y))
            self.last_seen[inst.track_id] = now
        zone_events = self.rules.step(now, objects)
        gone = [(tid, seen) for tid, seen in self.last_seen.items() if t - seen.t > self.gap_s]
        if gone:
            for tid, _ in gone:
                del self.last_seen[tid]
            zone_events += self.rules.end_tracks(gone, now)
        self.events += self.builder.for_zone_events(self.source_id, zone_events)

    def finish(self) -> list[dict[str, Any]]:
        ended = self.rules.end_tracks(list(self.last_seen.items()))
        self.last_seen.clear()
        self.events += self.builder.for_zone_events(self.source_id, ended)
        return self.events


def true_events(
    regions: RegionsConfig, size: tuple[int, int], fps: float, frames: Iterable[tuple[int, Sequence[Instance]]]
) -> list[dict[str, Any]]:
    truth = TrueEvents(regions, size, fps)
    for index, instances in frames:
        truth.add(index, instances)
    return truth.finish()
