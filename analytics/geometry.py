"""Pure geometry for zones and lines: polygon checks, sides of a line, where an object is (mask or box).

Image coordinates throughout: x to the right, y down, pixels. Mask work touches only the object's box window
(a crop of the mask), never the whole frame, so the cost is proportional to the object. numpy only: the config
validates polygons with it, and config loading must stay light.
"""

from __future__ import annotations

import numpy as np

Point = tuple[float, float]
# Where an object is taken to be: "mask" = the share of its mask pixels (default), "footprint" = the middle of
# its lowest mask pixels (where feet touch the ground), "box_bottom" = the bottom centre of its box (peers' rule).
REFERENCES: tuple[str, ...] = ("mask", "footprint", "box_bottom")

# Rows of the mask bottom averaged for the footprint: one row is noisy, a few follow the feet.
_FOOTPRINT_ROWS = 3


def polygon_area(points: np.ndarray) -> float:
    """Signed area (shoelace); positive for counter-clockwise on screen with y down means clockwise visually."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _orientation(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))


def _on_segment(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_intersect(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> bool:
    """Closed segments ab and cd share at least one point (touching counts)."""
    o1, o2, o3, o4 = _orientation(a, b, c), _orientation(a, b, d), _orientation(c, d, a), _orientation(c, d, b)
    if ((o1 > 0 and o2 < 0) or (o1 < 0 and o2 > 0)) and ((o3 > 0 and o4 < 0) or (o3 < 0 and o4 > 0)):
        return True
    return (
        (o1 == 0 and _on_segment(a, b, c))
        or (o2 == 0 and _on_segment(a, b, d))
        or (o3 == 0 and _on_segment(c, d, a))
        or (o4 == 0 and _on_segment(c, d, b))
    )


def polygon_problem(points: np.ndarray, min_area: float = 1e-9) -> str | None:
    """Why `points` (K x 2, K >= 3) is not a usable simple polygon, or None when it is.

    Rejects repeated consecutive vertices, (near) zero area — e.g. all points on one line — and edges that cross
    or touch any edge other than their two neighbours (a bow-tie, a polygon folding back on itself).
    """
    pts = np.asarray(points, float)
    count = len(pts)
    if count < 3:
        return f"a polygon needs at least 3 points, got {count}"
    nxt = np.roll(pts, -1, axis=0)
    if np.any(np.all(pts == nxt, axis=1)):
        return "two consecutive points are the same"
    for i in range(count):
        for j in range(i + 1, count):
            if j == i + 1 or (i == 0 and j == count - 1):
                continue  # neighbours share a vertex by construction
            if segments_intersect(pts[i], nxt[i], pts[j], nxt[j]):
                return f"edges {i}-{(i + 1) % count} and {j}-{(j + 1) % count} intersect (self-intersecting polygon)"
    if abs(polygon_area(pts)) <= min_area:
        return "the polygon has no area (its points are on one line)"
    return None


def point_in_polygon(point: Point, polygon: np.ndarray) -> bool:
    """Even-odd rule (a point exactly on an edge may fall either way)."""
    px, py = np.array([float(point[0])]), np.array([float(point[1])])
    return bool(points_in_polygon(px, py, np.asarray(polygon, float))[0])


def points_in_polygon(px: np.ndarray, py: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd test of many points against one polygon, vectorised over the points (cost: points x edges)."""
    inside = np.zeros(px.shape, bool)
    previous = polygon[-1]
    for vertex in polygon:
        (x1, y1), (x2, y2) = vertex, previous
        previous = vertex
        if y1 == y2:
            continue  # a horizontal edge never crosses the horizontal ray
        spans = (y1 > py) != (y2 > py)
        crossing_x = x1 + (py - y1) * ((x2 - x1) / (y2 - y1))
        inside ^= spans & (px < crossing_x)
    return inside


def mask_fraction_inside(crop: np.ndarray, x0: int, y0: int, polygon: np.ndarray) -> float:
    """Share of the mask's pixels whose centres are inside `polygon`; `crop` is the mask's box window, its
    top-left at (x0, y0). Only the mask's own pixels are tested, so the cost follows the object, not the frame."""
    height, width = crop.shape
    # fast exit on the bounding boxes: most objects are nowhere near most zones
    px0, py0 = polygon.min(axis=0)
    px1, py1 = polygon.max(axis=0)
    if px1 < x0 or py1 < y0 or px0 > x0 + width or py0 > y0 + height:
        return 0.0
    ys, xs = np.nonzero(crop)
    if xs.size == 0:
        return 0.0
    inside = points_in_polygon(xs + (x0 + 0.5), ys + (y0 + 0.5), np.asarray(polygon, float))
    return float(np.count_nonzero(inside)) / xs.size


def footprint_point(crop: np.ndarray, x0: int, y0: int) -> Point | None:
    """Middle of the mask's lowest pixels (the last few occupied rows), in frame pixels; None for an empty mask."""
    rows = np.flatnonzero(crop.any(axis=1))
    if rows.size == 0:
        return None
    bottom = int(rows[-1])
    band = crop[max(0, bottom - _FOOTPRINT_ROWS + 1) : bottom + 1]
    xs = np.flatnonzero(band.any(axis=0))
    return (x0 + float(xs.mean()) + 0.5, y0 + bottom + 1.0)


def box_bottom_centre(box: np.ndarray) -> Point:
    return ((float(box[0]) + float(box[2])) / 2.0, float(box[3]))


def mask_centroid(crop: np.ndarray, x0: int, y0: int) -> Point | None:
    ys, xs = np.nonzero(crop)
    if xs.size == 0:
        return None
    return (x0 + float(xs.mean()) + 0.5, y0 + float(ys.mean()) + 0.5)


def side_of_line(point: Point, a: np.ndarray, b: np.ndarray) -> float:
    """> 0: left of a→b as seen on screen (y down), < 0: right, 0: on the line."""
    return -((b[0] - a[0]) * (point[1] - a[1]) - (b[1] - a[1]) * (point[0] - a[0]))


def along_line(point: Point, a: np.ndarray, b: np.ndarray) -> float:
    """Position of the point's projection on a→b: 0 at a, 1 at b (outside [0, 1] = beyond an end)."""
    d = b - a
    return float(((point[0] - a[0]) * d[0] + (point[1] - a[1]) * d[1]) / float(d @ d))


def mask_fraction_left(crop: np.ndarray, x0: int, y0: int, a: np.ndarray, b: np.ndarray) -> float:
    """Share of the mask's pixels (centres) on the left of a→b, on screen; cost follows the crop's size."""
    ys, xs = np.nonzero(crop)
    if xs.size == 0:
        return 0.0
    px = xs + (x0 + 0.5)
    py = ys + (y0 + 0.5)
    left = -((b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0])) > 0
    return float(np.count_nonzero(left)) / xs.size


def box_window(box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """Integer window (x0, y0, x1, y1) holding every pixel a box touches, clipped to a height x width frame."""
    x0 = min(max(int(np.floor(box[0])), 0), width)
    y0 = min(max(int(np.floor(box[1])), 0), height)
    x1 = min(max(int(np.ceil(box[2])), x0), width)
    y1 = min(max(int(np.ceil(box[3])), y0), height)
    return x0, y0, x1, y1
