"""Property tests of the zone/line geometry (analytics.geometry)."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import geometry as geo

coord = st.floats(0, 200, allow_nan=False, allow_infinity=False)


@st.composite
def convex_polygons(draw) -> np.ndarray:
    """A convex polygon: points on an ellipse at sorted distinct angles (never self-intersecting)."""
    count = draw(st.integers(3, 8))
    angles = sorted(draw(st.lists(st.floats(0, 2 * np.pi - 0.05), min_size=count, max_size=count, unique=True)))
    if min(np.diff(angles, append=angles[0] + 2 * np.pi)) < 0.05:
        angles = list(np.linspace(0, 2 * np.pi, count, endpoint=False))
    cx, cy = draw(coord), draw(coord)
    rx, ry = draw(st.floats(5, 80)), draw(st.floats(5, 80))
    return np.array([[cx + rx * np.cos(a), cy + ry * np.sin(a)] for a in angles])


@given(convex_polygons())
def test_convex_polygons_are_accepted_in_either_orientation(polygon: np.ndarray) -> None:
    assert geo.polygon_problem(polygon) is None
    assert geo.polygon_problem(polygon[::-1]) is None


@given(convex_polygons(), st.integers(0, 7))
def test_swapping_two_vertices_of_a_quad_makes_a_bow_tie(polygon: np.ndarray, start: int) -> None:
    quad = polygon[:4] if len(polygon) >= 4 else None
    if quad is None:
        return
    quad = np.roll(quad, start, axis=0)
    bow_tie = quad[[0, 2, 1, 3]]
    problem = geo.polygon_problem(bow_tie)
    assert problem is not None  # "intersect", or "no area" for a bow tie symmetric enough to cancel out
    assert "intersect" in problem or "no area" in problem


@given(coord, coord, coord, coord, st.integers(3, 6))
def test_collinear_points_are_degenerate(x0: float, y0: float, dx: float, dy: float, count: int) -> None:
    if dx == 0 and dy == 0:
        dx = 1.0
    points = np.array([[x0 + k * dx, y0 + k * dy] for k in range(count)])
    assert geo.polygon_problem(points) is not None


@settings(max_examples=60)
@given(convex_polygons(), st.integers(0, 150), st.integers(0, 150), st.integers(1, 60), st.integers(1, 60))
def test_mask_share_inside_matches_a_pixel_by_pixel_test(
    polygon: np.ndarray, x0: int, y0: int, width: int, height: int
) -> None:
    """The share equals testing every mask pixel centre against the polygon (OpenCV's pointPolygonTest)."""
    import cv2

    rng = np.random.default_rng(x0 * 1000 + y0)
    crop = rng.random((height, width)) < 0.6
    share = geo.mask_fraction_inside(crop, x0, y0, polygon)
    ys, xs = np.nonzero(crop)
    if xs.size == 0:
        assert share == 0.0
        return
    contour = polygon.astype(np.float64).reshape(-1, 1, 2).astype(np.float32)
    inside, on_border = 0, 0
    for y, x in zip(ys, xs, strict=True):
        distance = cv2.pointPolygonTest(contour, (float(x0 + x + 0.5), float(y0 + y + 0.5)), True)
        inside += distance > 0
        on_border += abs(distance) < 1e-3  # float32 contour: a centre on an edge may go either way
    assert abs(round(share * xs.size) - inside) <= on_border


quarter_px = st.integers(0, 800).map(lambda v: v / 4)  # exact in binary: the sign test is then exact too


@given(quarter_px, quarter_px, quarter_px, quarter_px, quarter_px, quarter_px)
def test_sides_of_a_line_flip_with_its_direction(
    ax: float, ay: float, bx: float, by: float, px: float, py: float
) -> None:
    a, b = np.array([ax, ay]), np.array([bx, by])
    if np.allclose(a, b):
        return
    assert np.sign(geo.side_of_line((px, py), a, b)) == -np.sign(geo.side_of_line((px, py), b, a))


def test_left_is_left_on_screen() -> None:
    a, b = np.array([0.0, 10.0]), np.array([100.0, 10.0])  # pointing right: left on screen is up (smaller y)
    assert geo.side_of_line((50, 0), a, b) > 0
    assert geo.side_of_line((50, 20), a, b) < 0
    crop = np.ones((4, 4), bool)
    assert geo.mask_fraction_left(crop, 48, 0, a, b) == 1.0
    assert geo.mask_fraction_left(crop, 48, 30, a, b) == 0.0


@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 100), st.integers(0, 100))
def test_footprint_is_on_the_lowest_row_and_within_the_mask(width: int, height: int, x0: int, y0: int) -> None:
    rng = np.random.default_rng(width * 31 + height)
    crop = rng.random((height, width)) < 0.5
    point = geo.footprint_point(crop, x0, y0)
    rows = np.flatnonzero(crop.any(axis=1))
    if rows.size == 0:
        assert point is None
        return
    assert point is not None
    assert point[1] == y0 + rows[-1] + 1
    cols = np.flatnonzero(crop.any(axis=0))
    assert x0 + cols.min() <= point[0] <= x0 + cols.max() + 1


@given(st.lists(coord, min_size=4, max_size=4), st.integers(1, 400), st.integers(1, 400))
def test_box_window_is_inside_the_frame_and_holds_the_box(values: list[float], height: int, width: int) -> None:
    x1, x2 = sorted(values[:2])
    y1, y2 = sorted(values[2:])
    wx0, wy0, wx1, wy1 = geo.box_window(np.array([x1, y1, x2, y2]), height, width)
    assert 0 <= wx0 <= wx1 <= width and 0 <= wy0 <= wy1 <= height
    assert wx0 <= min(width, x1) and wx1 >= min(width, x2)
    assert wy0 <= min(height, y1) and wy1 >= min(height, y2)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.tuples(st.integers(0, 190), st.integers(0, 190))), min_size=1, max_size=60),
    st.integers(1, 4),
)
def test_rules_alternate_entries_and_exits_and_crossing_directions(path, min_frames: int) -> None:
    """Whatever a track does (including unobserved frames), its zone events alternate entered/exited starting with
    an entry, each exit after its entry; its crossings alternate in/out; after the track ends it is outside."""
    from analytics.rules import Moment, ObjectView, RegionRules
    from pipeline.config.zones import LineConfig, ZoneConfig

    zone = ZoneConfig(name="z", points=[[50, 50], [150, 40], [160, 150], [40, 140]], min_frames=min_frames)
    line = LineConfig(name="l", points=[[100, 0], [100, 200]], min_frames=min_frames)
    rules = RegionRules([zone], [line], ["bg", "person"])
    rules.resolve(200, 200)
    events = []
    for index, xy in enumerate(path):
        now = Moment(index, index / 10, 1000 + index / 10)
        objects = []
        if xy is not None:
            x, y = xy
            crop = np.ones((10, 10), bool)
            objects.append(ObjectView(1, 1, np.array([x, y, x + 10, y + 10], np.float32), crop, x, y))
        events += rules.step(now, objects)
    events += rules.end_tracks([(1, Moment(len(path), None, 2000.0))])
    zone_kinds = [e.kind for e in events if e.kind in ("zone.entered", "zone.exited")]
    assert zone_kinds == ["zone.entered", "zone.exited"] * (len(zone_kinds) // 2)
    directions = [e.direction for e in events if e.kind == "line.crossed"]
    assert all(a != b for a, b in itertools.pairwise(directions))
    occupancy = [e.counts for e in events if e.kind == "zone.occupancy"]
    assert not occupancy or occupancy[-1] == {}
