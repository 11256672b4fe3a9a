"""Rasterise an object made of parts (polygons, capsules, discs, rings) into a frame and its instance-id map.

Parts are given in the object's own metric coordinates and mapped to pixels by a 2x3 affine transform
(uniform scale, any rotation or mirror). Each object is drawn into a small RGBA patch first (alpha = its
silhouette) so it gets its own texture and shading, then pasted over the frame in painter's order: the
id map then holds, per pixel, the object that is visible there, which is exactly the visible mask.

Annotated objects follow COCO's convention: an instance is a polygon around its outline, so a mask has no
holes. A bicycle is one silhouette around frame and wheels (the background seen through the spokes and the
frame triangle belongs to it), not its 1-px wire frame, which no predicted mask could ever overlap.
`rasterize(..., filled=True)` gives such a patch: the image shows what is drawn, the id map the filled outline.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from synth.textures import TextureBank

Colour = tuple[int, int, int]

_SHIFT = 3  # fixed-point bits for OpenCV drawing: sub-pixel geometry keeps small objects' shapes stable
_ONE = 1 << _SHIFT


@dataclass(frozen=True, slots=True)
class Part:
    """One drawable piece of an object.

    kind: "poly" (filled polygon through `points`), "capsule" (segment points[0]-points[1] of
    radius `size`), "disc" (centre points[0], radius `size`), "ring" (circle outline, radius `size`,
    line width `width`), "ellipse" (centre points[0], semi-axes points[1], angle `width` degrees).
    stripes: optional (colour, period in metres) painted over a poly as horizontal bands (clothes, cargo).
    """

    kind: str
    points: np.ndarray
    colour: Colour
    size: float = 0.0
    width: float = 0.0
    stripes: tuple[Colour, float] | None = None


def poly(points, colour: Colour, stripes: tuple[Colour, float] | None = None) -> Part:
    return Part("poly", np.asarray(points, np.float32), colour, stripes=stripes)


def capsule(p0, p1, radius: float, colour: Colour) -> Part:
    return Part("capsule", np.asarray([p0, p1], np.float32), colour, size=radius)


def disc(centre, radius: float, colour: Colour) -> Part:
    return Part("disc", np.asarray([centre], np.float32), colour, size=radius)


def ring(centre, radius: float, width: float, colour: Colour) -> Part:
    return Part("ring", np.asarray([centre], np.float32), colour, size=radius, width=width)


def ellipse(centre, axes, angle_deg: float, colour: Colour) -> Part:
    return Part("ellipse", np.asarray([centre, axes], np.float32), colour, width=angle_deg)


@dataclass(slots=True)
class Patch:
    """An object rasterised on its own: RGB, silhouette and where its top-left corner lies in the frame."""

    rgb: np.ndarray  # (h, w, 3) uint8
    alpha: np.ndarray  # (h, w) bool, the drawn pixels
    x0: int
    y0: int
    outline: np.ndarray | None = None  # (h, w) bool, the annotated region when it is more than `alpha`

    @property
    def footprint(self) -> np.ndarray:
        """The pixels the object's annotation covers (its id in the id map): `alpha` with holes filled if `filled`."""
        return self.alpha if self.outline is None else self.outline


def rasterize(
    parts: list[Part],
    affine: np.ndarray,
    *,
    textures: TextureBank | None = None,
    texture_offset: tuple[int, int] = (0, 0),
    texture_amplitude: float = 0.0,
    vertical_shade: float = 0.0,
    filled: bool = False,
) -> Patch | None:
    """Draw `parts` (object coordinates) through `affine` (2x3, object -> frame pixels) into a patch.

    Returns None when nothing covers a pixel centre. `vertical_shade` darkens the patch towards its
    bottom (light from above); the texture multiplies the colours (fabric, paint, dirt). `filled`: the
    annotation is the silhouette with its holes filled (COCO's polygon convention), see the module doc.
    """
    linear = affine[:, :2]
    det = float(np.linalg.det(linear))
    scale = float(np.sqrt(abs(det)))
    anchors = [p.points[:1] if p.kind == "ellipse" else p.points for p in parts]
    starts = np.cumsum([0] + [len(a) for a in anchors])
    mapped = np.concatenate(anchors) @ linear.T + affine[:, 2]
    reach = max(
        max(p.size for p in parts),
        max((float(np.abs(p.points[1]).max()) for p in parts if p.kind == "ellipse"), default=0.0),
    )
    pad = scale * reach + 1.0
    lo = mapped.min(axis=0) - pad
    hi = mapped.max(axis=0) + pad
    x0, y0 = int(np.floor(lo[0])), int(np.floor(lo[1]))
    width, height = int(np.ceil(hi[0])) - x0 + 1, int(np.ceil(hi[1])) - y0 + 1
    if width < 2 or height < 2:
        return None
    local = mapped - (x0, y0)
    fixed = np.round(local * _ONE).astype(np.int32)
    canvas = np.zeros((height, width, 4), np.uint8)
    rotation = float(np.degrees(np.arctan2(affine[1, 0], affine[0, 0])))
    for index, part in enumerate(parts):
        colour = (*part.colour, 255)
        first = int(starts[index])
        kind = part.kind
        if kind == "capsule":
            _draw_capsule(canvas, local[first], local[first + 1], part.size * scale, colour)
        elif kind == "poly":
            pts = fixed[first : int(starts[index + 1])]
            cv2.fillPoly(canvas, [pts], colour, cv2.LINE_8, _SHIFT)
            if part.stripes is not None:
                _paint_stripes(canvas, pts, part.stripes, scale)
        elif kind == "disc":
            centre = (int(fixed[first, 0]), int(fixed[first, 1]))
            cv2.circle(canvas, centre, round(part.size * scale * _ONE), colour, -1, cv2.LINE_8, _SHIFT)
        elif kind == "ring":
            centre = (int(fixed[first, 0]), int(fixed[first, 1]))
            thickness = max(1, round(part.width * scale))
            cv2.circle(canvas, centre, round(part.size * scale * _ONE), colour, thickness, cv2.LINE_8, _SHIFT)
        elif kind == "ellipse":
            centre = (int(fixed[first, 0]), int(fixed[first, 1]))
            axes = (
                round(abs(float(part.points[1, 0])) * scale * _ONE),
                round(abs(float(part.points[1, 1])) * scale * _ONE),
            )
            # the ellipse turns with the transform; a mirror flips the sense of its own angle
            angle = rotation + (part.width if det > 0 else -part.width)
            cv2.ellipse(canvas, centre, axes, angle, 0, 360, colour, -1, cv2.LINE_8, _SHIFT)
        else:
            raise ValueError(f"unknown part kind {kind!r}")
    alpha = canvas[:, :, 3] > 0
    if not alpha.any():
        return None
    rgb = canvas[:, :, :3]
    if (textures is not None and texture_amplitude > 0) or vertical_shade > 0:
        if textures is not None and texture_amplitude > 0:
            gain = textures.modulation((height, width), texture_offset, texture_amplitude)
        else:
            gain = np.ones((height, width), np.float32)
        if vertical_shade > 0:
            gain = (
                gain
                * np.linspace(1.0 + vertical_shade / 2, 1.0 - vertical_shade / 2, height, dtype=np.float32)[:, None]
            )
        rgb = cv2.multiply(rgb, cv2.merge([gain, gain, gain]), dtype=cv2.CV_8U)
    outline = None
    if filled:
        # background 4-connected, strokes 8-connected (LINE_8): a drawn ring always encloses its inside
        holes = ndimage.binary_fill_holes(alpha)
        outline = holes if int(holes.sum()) > int(alpha.sum()) else None
    return Patch(rgb=np.ascontiguousarray(rgb), alpha=alpha, x0=x0, y0=y0, outline=outline)


def _draw_capsule(canvas: np.ndarray, p0: np.ndarray, p1: np.ndarray, radius: float, colour) -> None:
    """A thick segment with round ends, exact to 1/8 pixel (cv2.line's thickness is whole pixels)."""
    ax, ay, bx, by = float(p0[0]), float(p0[1]), float(p1[0]), float(p1[1])
    dx, dy = bx - ax, by - ay
    length = (dx * dx + dy * dy) ** 0.5
    r_fixed = round(radius * _ONE)
    if length > 1e-6:
        nx, ny = -dy / length * radius, dx / length * radius
        quad = np.array([[ax + nx, ay + ny], [bx + nx, by + ny], [bx - nx, by - ny], [ax - nx, ay - ny]]) * _ONE
        cv2.fillConvexPoly(canvas, quad.round().astype(np.int32), colour, cv2.LINE_8, _SHIFT)
    cv2.circle(canvas, (round(ax * _ONE), round(ay * _ONE)), r_fixed, colour, -1, cv2.LINE_8, _SHIFT)
    cv2.circle(canvas, (round(bx * _ONE), round(by * _ONE)), r_fixed, colour, -1, cv2.LINE_8, _SHIFT)


def _paint_stripes(canvas: np.ndarray, fixed_points: np.ndarray, stripes: tuple[Colour, float], scale: float) -> None:
    colour, period = stripes
    period_px = max(2.0, period * scale)
    part = np.zeros(canvas.shape[:2], np.uint8)
    cv2.fillPoly(part, [fixed_points], 1, cv2.LINE_8, _SHIFT)
    rows = (np.arange(canvas.shape[0]) // (period_px / 2)).astype(np.int64) % 2 == 1
    paint = (part > 0) & rows[:, None]
    canvas[paint, :3] = colour


def paste(frame: np.ndarray, ids: np.ndarray, patch: Patch, instance_id: int) -> None:
    """Paint `patch` over `frame` and write `instance_id` into `ids` over its footprint (clipped to the frame).

    Instance id 0 paints scenery (poles, trees): it hides whatever is behind it and belongs to nobody.
    """
    height, width = ids.shape
    ph, pw = patch.alpha.shape
    fx0, fy0 = max(patch.x0, 0), max(patch.y0, 0)
    fx1, fy1 = min(patch.x0 + pw, width), min(patch.y0 + ph, height)
    if fx0 >= fx1 or fy0 >= fy1:
        return
    px0, py0 = fx0 - patch.x0, fy0 - patch.y0
    region = (slice(fy0, fy1), slice(fx0, fx1))
    local = (slice(py0, py0 + fy1 - fy0), slice(px0, px0 + fx1 - fx0))
    alpha = patch.alpha[local]
    frame[region][alpha] = patch.rgb[local][alpha]
    ids[region][patch.footprint[local]] = instance_id


def silhouette_area(patch: Patch | None) -> int:
    """The object's full (unoccluded, unclipped) annotated area in pixels."""
    return 0 if patch is None else int(patch.footprint.sum())
