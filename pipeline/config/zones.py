"""Zones and counting lines of one source (`sources[].zones`, `sources[].lines`), as DeepStream's nvdsanalytics
and Frigate's zones hang their regions off each camera.

Coordinates are image pixels of the source's frames (x right, y down), or fractions 0..1 of the frame's width
and height (`units: fraction`). Fractions are resolved when a source's first frame arrives (its size is known
then, and again if a reconnect changes it). Pixel coordinates outside the frame are found then too: the stream
reports one `stream.error` naming the field and that zone or line is left out; everything else keeps running.

Zones and lines are fixed in the image (frame-fixed): with a moving camera (drone) they stay where they are
on the screen, they do not follow the ground. Event semantics are in docs/EVENTS.md.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from pipeline.config.base import StrictModel

if TYPE_CHECKING:
    import numpy as np

# how an object's place is judged: share of mask pixels inside (default), lowest mask pixels, box bottom centre
Reference = Literal["mask", "footprint", "box_bottom"]

Units = Literal["px", "fraction"]
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


class _RegionBase(StrictModel):
    name: str = Field(
        ...,
        pattern=_NAME_PATTERN,
        description="Unique name within the source (letters, digits, _ . : -); used in events and metric labels.",
    )
    units: Units = Field("px", description="`px`: points in pixels; `fraction`: 0..1 of the frame's width/height.")
    classes: list[str] | None = Field(
        None, description="Only objects of these class names count (e.g. [person]); null = every class."
    )
    min_frames: int = Field(
        3,
        ge=1,
        description="Observed frames in a row an object must hold its new state (inside/outside, side of a line) "
        "before it counts: jitter at an edge does not flap. Events are dated at the first of those frames.",
    )

    @field_validator("points", check_fields=False, mode="after")
    @classmethod
    def _inside_the_frame(cls, points: list[tuple[float, float]], info: ValidationInfo) -> list[tuple[float, float]]:
        fractions = info.data.get("units") == "fraction"  # declared before points, so already validated
        for index, (x, y) in enumerate(points):
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"point {index} ({x}, {y}) is not a finite number")
            if x < 0 or y < 0:
                raise ValueError(f"point {index} ({x}, {y}) is outside the frame (negative coordinate)")
            if fractions and (x > 1 or y > 1):
                raise ValueError(f"point {index} ({x}, {y}) is outside the frame (fractions are 0..1)")
        return points

    def pixel_points(self, width: int, height: int) -> np.ndarray:
        """(K, 2) float points in pixels of a width x height frame."""
        import numpy as np  # not at import: the config loads without numpy

        points = np.asarray(self.points, np.float64)  # type: ignore[attr-defined]
        return points * (width, height) if self.units == "fraction" else points


class ZoneConfig(_RegionBase):
    """A named polygon: objects entering, leaving, staying too long; occupancy per class."""

    points: list[tuple[float, float]] = Field(
        ..., min_length=3, description="Polygon vertices [[x, y], ...] in order; not self-intersecting."
    )
    reference: Reference = Field(
        "mask",
        description="What puts an object inside: `mask` = at least `min_overlap` of its mask pixels are in the "
        "zone (robust to occlusion); `footprint` = the middle of its lowest mask pixels (feet on the ground); "
        "`box_bottom` = the bottom centre of its box (what peers use).",
    )
    min_overlap: float = Field(
        0.5, gt=0.0, le=1.0, description="`reference: mask`: share of the mask inside the zone to count as in."
    )
    dwell_s: float | None = Field(
        None, gt=0, description="Send `zone.dwell` once per track when it has stayed this many seconds; null = never."
    )

    @field_validator("points")
    @classmethod
    def _simple_polygon(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        import numpy as np

        from analytics.geometry import polygon_problem  # numpy geometry: loaded only when a zone is declared

        problem = polygon_problem(np.asarray(points, np.float64))
        if problem is not None:
            raise ValueError(problem)
        return points


class LineConfig(_RegionBase):
    """A named counting line (a segment): objects crossing it, with the direction."""

    points: list[tuple[float, float]] = Field(
        ..., min_length=2, max_length=2, description="The segment's two ends [[x1, y1], [x2, y2]]."
    )
    in_side: Literal["left", "right"] = Field(
        "left",
        description='Which side is "in", looking along the line from its first point to its second on screen: '
        "a crossing towards it is direction `in`, away from it `out`.",
    )
    reference: Reference = Field(
        "mask",
        description="What decides the side of an object: `mask` = the side holding most of its mask pixels; "
        "`footprint` = the middle of its lowest mask pixels; `box_bottom` = the bottom centre of its box. An object "
        "counts only while its reference (the mask's centroid for `mask`) is alongside the segment, not beyond its ends.",
    )

    @field_validator("points")
    @classmethod
    def _has_length(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        (x1, y1), (x2, y2) = points
        if x1 == x2 and y1 == y2:
            raise ValueError(f"the line has zero length (both points are ({x1}, {y1}))")
        return points


def check_unique_names(zones: list[ZoneConfig], lines: list[LineConfig]) -> None:
    """Zone and line names share one namespace per source (events and metrics are keyed by them)."""
    seen: dict[str, str] = {}
    for field, regions in (("zones", zones), ("lines", lines)):
        for index, region in enumerate(regions):
            where = f"{field}[{index}]"
            if region.name in seen:
                raise ValueError(f"{where}.name: {region.name!r} is already used by {seen[region.name]}")
            seen[region.name] = where


class RegionsConfig(StrictModel):
    """A file of zones and lines alone (`maskstream synth --zones`): the same entries a source's `zones:` and
    `lines:` take, so one file serves the simulator's ground truth and a run's config."""

    zones: list[ZoneConfig] = Field(default_factory=list, description="Named polygons.")
    lines: list[LineConfig] = Field(default_factory=list, description="Named counting lines.")

    @model_validator(mode="after")
    def _unique(self) -> RegionsConfig:
        check_unique_names(self.zones, self.lines)
        if not self.zones and not self.lines:
            raise ValueError("no zones and no lines: give at least one")
        return self


def load_regions(path: str) -> RegionsConfig:
    """Read a zones/lines YAML file; a one-line ConfigError naming the file and field on any problem."""
    from pydantic import ValidationError

    from pipeline.config.loader import load_yaml, validation_error

    try:
        return RegionsConfig.model_validate(load_yaml(path))
    except ValidationError as exc:
        raise validation_error(exc, str(path)) from None
