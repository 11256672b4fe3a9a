"""Property tests for the simulator's geometry helpers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError
from synth.camera import apply_homography, area_scale, ground_homography
from synth.params import parse_size
from synth.raster import Patch, capsule, paste, poly, rasterize
from synth.world import clip_line

coords = st.floats(-50, 50, allow_nan=False)


def _inside(region: np.ndarray, point: np.ndarray, tol: float = 1e-6) -> bool:
    centroid = region.mean(axis=0)
    for a, b in zip(region, np.roll(region, -1, axis=0), strict=True):
        edge = b - a
        inward = np.array([-edge[1], edge[0]])
        if np.dot(inward, centroid - a) < 0:
            inward = -inward
        if np.dot(inward, point - a) < -tol * np.linalg.norm(inward):
            return False
    return True


def _on_boundary(region: np.ndarray, point: np.ndarray, tol: float = 1e-6) -> bool:
    """Within `tol` of one of the region's edges (a line running along an edge touches only the boundary)."""
    for a, b in zip(region, np.roll(region, -1, axis=0), strict=True):
        edge = b - a
        along = np.clip(np.dot(point - a, edge) / np.dot(edge, edge), 0.0, 1.0)
        if np.linalg.norm(point - (a + along * edge)) <= tol * max(1.0, np.linalg.norm(edge)):
            return True
    return False


@settings(max_examples=80, deadline=None)
@given(
    x0=coords,
    y0=coords,
    angle=st.floats(0, 2 * np.pi),
    ox=coords,
    oy=coords,
    w=st.floats(1, 40),
    h=st.floats(1, 40),
    skew=st.floats(0, 0.9),
)
def test_clip_line_keeps_exactly_the_part_inside_the_region(x0, y0, angle, ox, oy, w, h, skew):
    region = np.array([[ox, oy], [ox + w, oy], [ox + w * (1 + skew), oy + h], [ox - w * skew, oy + h]])
    origin = np.array([x0, y0])
    direction = np.array([np.cos(angle), np.sin(angle)])
    span = clip_line(origin, direction, region)
    samples = np.linspace(-300, 300, 241)
    inside = [t for t in samples if _inside(region, origin + direction * t)]
    if span is None:
        # grazing a corner, or running exactly along an edge: no interior is crossed
        grazing = not inside or (max(inside) - min(inside)) < 1.0 + 1e-9
        assert grazing or all(_on_boundary(region, origin + direction * t) for t in inside)
        return
    t0, t1 = span
    for t in samples:
        if t0 + 1e-6 < t < t1 - 1e-6:
            assert _inside(region, origin + direction * t, tol=1e-6)
        elif t < t0 - 1e-3 or t > t1 + 1e-3:
            assert not _inside(region, origin + direction * t, tol=-1e-6)


@given(width=st.integers(64, 3840), height=st.integers(48, 2160))
def test_parse_size_round_trips_even_sizes_and_rejects_odd_ones(width, height):
    text = f"{width}x{height}"
    if width % 2 or height % 2:
        with pytest.raises(ConfigError, match="even"):
            parse_size(text)
    else:
        assert parse_size(text) == (width, height)


@given(st.text(max_size=12).filter(lambda s: "x" not in s.lower()))
def test_parse_size_rejects_text_without_a_separator(text):
    with pytest.raises(ConfigError, match="WIDTHxHEIGHT"):
        parse_size(text)


@settings(max_examples=60, deadline=None)
@given(yaw=st.floats(0, 2 * np.pi), tilt=st.floats(0, 0.6), zoom=st.floats(2, 30), tx=coords, ty=coords)
def test_ground_homography_puts_the_target_at_the_centre_at_the_requested_scale(yaw, tilt, zoom, tx, ty):
    homography = ground_homography(np.array([tx, ty]), yaw, tilt, 80.0, zoom, (640, 360))
    centre = apply_homography(homography, np.array([[tx, ty]]))[0]
    assert np.allclose(centre, (320, 180), atol=1e-6)
    # one square metre at the target covers ~zoom^2 pixels (less when tilted: foreshortening)
    assert zoom**2 * np.cos(tilt) * 0.8 <= area_scale(homography, (tx, ty)) <= zoom**2 * 1.05


@settings(max_examples=80, deadline=None)
@given(
    x=st.floats(-20, 180),
    y=st.floats(-20, 120),
    scale=st.floats(0.5, 40),
    length=st.floats(0.1, 3),
    radius=st.floats(0.02, 0.6),
)
def test_pasted_patch_is_clipped_to_the_frame_and_ids_follow_the_silhouette(x, y, scale, length, radius):
    frame = np.zeros((96, 160, 3), np.uint8)
    ids = np.zeros((96, 160), np.uint16)
    parts = [
        capsule([0, 0], [length, 0], radius, (200, 10, 10)),
        poly([[0, 0], [0.2, 0.5], [-0.2, 0.5]], (10, 200, 10)),
    ]
    patch = rasterize(parts, np.array([[scale, 0, x], [0, -scale, y]]))
    if patch is None:
        return
    paste(frame, ids, patch, 7)
    full = np.zeros((96 + 400, 160 + 400), bool)
    ph, pw = patch.alpha.shape
    oy, ox = patch.y0 + 200, patch.x0 + 200
    if oy >= 0 and oy + ph <= full.shape[0] and ox >= 0 and ox + pw <= full.shape[1]:
        full[oy : oy + ph, ox : ox + pw] = patch.alpha
        assert np.array_equal(ids == 7, full[200:296, 200:360])
    assert np.array_equal(ids == 7, frame.any(axis=2))
    assert isinstance(patch, Patch)


@settings(max_examples=40, deadline=None)
@given(scale=st.floats(4, 80), x=st.floats(0, 60), y=st.floats(20, 80), sideness=st.floats(0.6, 1.0))
def test_bicycle_annotation_is_a_filled_silhouette_not_a_wire_frame(scale, x, y, sideness):
    """COCO annotates a bicycle as one polygon around frame and wheels: the id map covers the wheels' insides."""
    from scipy import ndimage

    from synth.actors import bicycle_elevation
    from synth.appearance import VehicleLook

    look = VehicleLook.random_bicycle(np.random.default_rng(3))
    affine = np.array([[scale, 0, x], [0, -scale, y]])
    patch = rasterize(bicycle_elevation(look, sideness), affine, filled=True)
    assert patch is not None
    footprint = patch.footprint
    assert np.array_equal(ndimage.binary_fill_holes(footprint), footprint)  # no holes, like a polygon
    assert (footprint | patch.alpha).sum() == footprint.sum()  # everything drawn is annotated
    half = look.length / 2 - look.wheel_radius
    for centre_x in (-half, half):  # a point inside each wheel, between hub and tyre
        px, py = affine[:, :2] @ [centre_x + 0.5 * look.wheel_radius, look.wheel_radius] + affine[:, 2]
        assert footprint[round(py) - patch.y0, round(px) - patch.x0]
    frame, ids = np.zeros((200, 200, 3), np.uint8), np.zeros((200, 200), np.uint16)
    shifted = Patch(patch.rgb, patch.alpha, 0, 0, patch.outline)
    paste(frame, ids, shifted, 5)
    h, w = footprint.shape
    assert np.array_equal(ids[:h, :w] == 5, footprint[:200, :200])
    assert frame.any(axis=2).sum() == patch.alpha[:200, :200].sum()  # the image still shows the spokes' gaps


def test_fully_visible_instances_have_no_holes_in_either_mode():
    """Every class follows the polygon convention (no holes); drone masks pass a nearest-neighbour warp (few px)."""
    from scipy import ndimage

    from synth import iter_frames

    checked = {"surveillance": 0, "drone": 0}
    for mode in checked:
        for seed in (0, 1):
            for _, instances in iter_frames(mode, seed, 2, (640, 360)):
                for inst in instances:
                    if inst.visibility < 0.999:
                        continue
                    filled = int(ndimage.binary_fill_holes(inst.mask).sum())
                    slack = 0 if mode == "surveillance" else max(4, inst.area // 20)
                    assert filled - inst.area <= slack, (mode, seed, inst.category_id, inst.area, filled)
                    checked[mode] += 1
    assert min(checked.values()) > 5
