"""Static surveillance camera over a ground plane in perspective.

A pinhole camera at height `cam_height` looking at the horizon row `horizon`: a ground point (X, Z)
(X right, Z forward, metres) appears at x = cx + f X / Z, y = horizon + f cam_height / Z, and an object
there is f / Z pixels per metre, so people shrink towards the horizon. Roads, sidewalks, parking bays,
poles and trees are laid out on the ground; traffic flows along lanes; everything is drawn far to near.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from synth import actors as shapes
from synth.categories import BICYCLE, CAR, PERSON, TRUCK
from synth.ground import GroundStyle, NoiseField, paint_ground
from synth.params import rng_from
from synth.raster import Part, Patch, capsule, disc, paste, poly, rasterize
from synth.scene import RenderedFrame
from synth.textures import TextureBank
from synth.world import COARSE_STEP, Actor, Lane, Strip, Traffic


@dataclass(slots=True)
class Prop:
    """Static scenery that hides what is behind it but is not annotated (pole, tree, bin)."""

    position: np.ndarray  # (X, Z)
    parts: list[Part]
    patch: Patch | Literal[False] | None = None  # cached raster (False: smaller than a pixel)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


class SurveillanceScene:
    def __init__(self, seq: np.random.SeedSequence, size: tuple[int, int], fps: float) -> None:
        self.width, self.height = size
        self.fps = fps
        layout = rng_from(seq, 1)
        self.textures = TextureBank(rng_from(seq, 4))
        w, h = self.width, self.height
        self.horizon = h * float(layout.uniform(0.16, 0.36))
        self.cam_height = float(layout.uniform(4.5, 10.0))
        self.focal = w * float(layout.uniform(0.8, 1.35))
        self.cx = w / 2 + w * float(layout.uniform(-0.03, 0.03))
        # a mounted camera is rarely level, and shakes a little in the wind
        self.roll = float(np.clip(layout.normal(0, 1.5), -4, 4)) if layout.random() < 0.6 else 0.0
        self.shake = float(layout.uniform(0.0, 0.6))  # pixels at 640 wide
        self.shake_phase = layout.uniform(0, 2 * np.pi, 4)
        self.time = 0.0
        self._parked_patches: dict[int, list[tuple[int, int, Patch]]] = {}
        f, hc = self.focal, self.cam_height
        self.z_near = f * hc / (h - self.horizon)
        self.z_far = min(f * 1.75 / max(5.0, 10.0 * h / 360), 180.0)  # people ~10 px tall at 360p
        self.z_min = max(self.z_near * (hc - 3.8) / hc, 2.2 * f / h, 1.0)
        self.region = self._frustum()
        self.style = GroundStyle.random(layout)
        self.strips: list[Strip] = []
        lanes: list[Lane] = []
        self.props: list[Prop] = []
        parking: list[tuple[np.ndarray, np.ndarray, int]] = []  # (position, heading, category) of parked vehicles
        density = float(layout.choice([0.5, 1.0, 1.6]))
        roads = layout.choice(["across", "along", "cross"], p=[0.45, 0.3, 0.25])
        mid_z = min(self.z_near * float(layout.uniform(1.15, 2.6)), self.z_far * 0.45)
        if roads in ("across", "cross"):
            self._road(layout, np.array([0.0, mid_z]), np.array([1.0, 0.0]), density, lanes, parking)
        if roads in ("along", "cross"):
            half_view = (w / 2) / f * (mid_z * 1.5)
            x_road = float(layout.uniform(-0.5, 0.5)) * half_view
            self._road(layout, np.array([x_road, mid_z]), np.array([0.0, 1.0]), density, lanes, parking)
        for _ in range(int(layout.integers(1, 4))):  # people cutting across squares and lawns
            anchor = np.array(
                [layout.uniform(-0.6, 0.6) * (w / 2) / f * mid_z, layout.uniform(self.z_near, mid_z * 1.5)]
            )
            angle = layout.uniform(0, 2 * np.pi)
            lanes.append(
                Lane(anchor, np.array([np.cos(angle), np.sin(angle)]), "walk", 0.08 * density, lateral_jitter=1.0)
            )
        self._trees(layout)
        self.traffic = Traffic(rng_from(seq, 2), lanes, self.region, fps, margin=6.0, max_actors=int(30 + 25 * density))
        for position, direction, category in parking:
            self.traffic.park(category, position, direction)
        self.traffic.populate()
        self.background = self._paint_background(layout)

    # ---- layout ---------------------------------------------------------------------------------------
    def _frustum(self) -> np.ndarray:
        slope = (self.width / 2) / self.focal + 0.02
        near, far = self.z_min, self.z_far
        return np.array([[-slope * near, near], [slope * near, near], [slope * far, far], [-slope * far, far]])

    def _road(self, rng, centre, direction, density, lanes: list[Lane], parking) -> None:
        lanes_each_way = 1 if rng.random() < 0.65 else 2
        half = 3.5 * lanes_each_way + float(rng.uniform(0.2, 0.8))
        normal = np.array([-direction[1], direction[0]])
        self.strips.append(Strip(centre, direction, half, "road"))
        walk_w = float(rng.uniform(1.8, 4.0))
        for side in (-1, 1):
            for k in range(lanes_each_way):
                offset = side * (1.75 + 3.5 * k)
                heading = direction if side < 0 else -direction
                lanes.append(Lane(centre + normal * offset, heading, "vehicle", 0.12 * density, lateral_jitter=0.25))
            if rng.random() < 0.7:
                heading = direction if side < 0 else -direction
                lanes.append(
                    Lane(centre + normal * side * (half - 0.7), heading, "bike", 0.04 * density, lateral_jitter=0.15)
                )
            walk_centre = centre + normal * side * (half + walk_w / 2)
            self.strips.append(Strip(walk_centre, direction, walk_w / 2, "sidewalk"))
            for heading in (direction, -direction):
                lanes.append(Lane(walk_centre, heading, "walk", 0.07 * density, lateral_jitter=walk_w / 2 - 0.3))
            # street lights and sign posts along the outer edge of the sidewalk
            spacing = float(rng.uniform(14, 30))
            edge = walk_centre + normal * side * (walk_w / 2 - 0.25)
            for t in np.arange(float(rng.uniform(-60, -60 + spacing)), 200, spacing):
                self._add_pole(rng, edge + direction * t)
            if rng.random() < 0.3:  # a bicycle stand at the kerb: riderless bicycles, side by side
                stand = walk_centre - normal * side * (walk_w / 2 - 0.5) + direction * float(rng.uniform(-20, 40))
                for k in range(int(rng.integers(1, 5))):
                    parking.append((stand + direction * 0.7 * k, normal * (1 if rng.random() < 0.5 else -1), BICYCLE))
            if rng.random() < 0.5:  # a parking bay beyond the sidewalk on this side
                bay_centre = centre + normal * side * (half + walk_w + 1.3)
                self.strips.append(Strip(bay_centre, direction, 1.3, "road"))
                t = float(rng.uniform(-40, -30))
                while t < 150:
                    if rng.random() < 0.55:
                        heading = direction * (1 if rng.random() < 0.5 else -1)
                        parking.append((bay_centre + direction * t, heading, TRUCK if rng.random() < 0.08 else CAR))
                    t += float(rng.uniform(5.5, 7.5))

    def _add_pole(self, rng, position: np.ndarray) -> None:
        if not self._near_view(position, 2.0):
            return
        grey = tuple(int(v) for v in rng.integers(70, 140) + rng.integers(-8, 9, 3))
        height = float(rng.uniform(3.0, 6.5))
        parts = [capsule([0, 0], [0, height], 0.07, grey)]
        if height > 4.5:  # street light with an arm
            parts.append(capsule([0, height], [0.9, height + 0.15], 0.05, grey))
            parts.append(
                poly(
                    [[0.7, height + 0.05], [1.2, height + 0.12], [1.2, height + 0.02], [0.7, height - 0.05]],
                    (220, 220, 200),
                )
            )
        else:  # sign post
            colour = [(200, 30, 30), (30, 80, 180), (230, 200, 40)][int(rng.integers(3))]
            parts.append(disc([0, height - 0.2], 0.32, colour))
        self.props.append(Prop(position, parts))

    def _trees(self, rng) -> None:
        for _ in range(int(rng.integers(0, 6))):
            position = np.array(
                [
                    rng.uniform(-1, 1) * (self.width / 2) / self.focal * self.z_far * 0.6,
                    rng.uniform(self.z_min, self.z_far * 0.7),
                ]
            )
            if not self._near_view(position, 3.0) or any(self._on_strip(s, position, 1.0) for s in self.strips):
                continue
            trunk = (int(rng.integers(60, 100)), int(rng.integers(40, 65)), int(rng.integers(25, 40)))
            height = float(rng.uniform(2.0, 3.5))
            parts = [capsule([0, 0], [0, height + 0.5], float(rng.uniform(0.12, 0.25)), trunk)]
            green = np.array([rng.integers(30, 70), rng.integers(70, 120), rng.integers(25, 60)])
            for _ in range(int(rng.integers(5, 10))):
                centre = [rng.normal(0, 0.8), height + 1.2 + rng.normal(0, 0.7)]
                tone = tuple(int(v) for v in np.clip(green * rng.uniform(0.7, 1.3), 0, 255))
                parts.append(disc(centre, float(rng.uniform(0.7, 1.4)), tone))
            self.props.append(Prop(position, parts))

    @staticmethod
    def _on_strip(strip: Strip, point: np.ndarray, pad: float) -> bool:
        return abs(float(np.dot(point - strip.centre, strip.normal))) < strip.half_width + pad

    def _near_view(self, position: np.ndarray, pad: float) -> bool:
        x, z = position
        return self.z_min <= z <= self.z_far and abs(x) <= (self.width / 2) / self.focal * z + pad

    # ---- drawing --------------------------------------------------------------------------------------
    def _paint_background(self, rng) -> np.ndarray:
        w, h, f = self.width, self.height, self.focal
        rows = np.arange(h, dtype=np.float32) + 0.5
        cols = np.arange(w, dtype=np.float32) + 0.5
        first = int(np.ceil(self.horizon + 0.5))
        image = np.zeros((h, w, 3), np.float32)
        sky_top = np.array([rng.uniform(90, 150), rng.uniform(130, 180), rng.uniform(190, 235)])
        sky_low = np.array([205.0, 210.0, 215.0]) * rng.uniform(0.85, 1.05)
        t = np.clip(rows[:first] / max(self.horizon, 1.0), 0, 1)[:, None]
        image[:first] = (sky_top * (1 - t) + sky_low * t)[:, None, :]
        z = f * self.cam_height / (rows[first:] - self.horizon)
        zz = np.repeat(z[:, None], w, axis=1)
        xx = (cols[None, :] - self.cx) * zz / f
        noise = NoiseField(rng)
        detail = np.clip((f / zz) / 30.0, 0, 1)  # fine texture fades where a metre is only a few pixels
        image[first:] = paint_ground(xx, zz, self.strips, self.style, noise, detail)
        # haze towards the horizon
        haze = np.clip(1 - (f / zz) / 25.0, 0, 0.6)[..., None]
        image[first:] = image[first:] * (1 - haze) + sky_low * haze
        self._skyline(image, rng)
        return np.clip(image, 0, 255).astype(np.uint8)

    def _skyline(self, image: np.ndarray, rng) -> None:
        """Distant buildings on the horizon (background, never annotated)."""
        h_row = int(self.horizon)
        x = -int(rng.integers(0, 40))
        while x < self.width:
            bw = int(rng.integers(max(4, self.width // 30), max(6, self.width // 8)))
            bh = int(rng.uniform(0.15, 0.9) * self.horizon)
            tone = rng.uniform(110, 190) * np.array([1.0, rng.uniform(0.92, 1.02), rng.uniform(0.9, 1.08)])
            image[max(h_row - bh, 0) : h_row + 1, max(x, 0) : x + bw] = tone
            step = max(3, self.width // 80)
            for wy in range(h_row - bh + step, h_row - step, step * 2):
                for wx in range(x + step // 2, x + bw - step // 2, step * 2):
                    if 0 <= wy < self.height and 0 <= wx < self.width:
                        image[wy : wy + step, max(wx, 0) : wx + step] = tone * rng.uniform(0.45, 0.75)
            x += bw + int(rng.integers(0, max(2, self.width // 40)))

    def project(self, position: np.ndarray) -> tuple[float, float, float]:
        """Image x, y of a ground point and the scale in pixels per metre there."""
        x_world, z = float(position[0]), float(position[1])
        scale = self.focal / z
        return self.cx + x_world * scale, self.horizon + self.cam_height * scale, scale

    def _view(self, actor: Actor) -> tuple[float, bool, float]:
        """(sideness, facing the camera, screen direction sign) of an actor seen from the camera."""
        ray = _unit(actor.position)
        direction = actor.direction
        sideness = abs(ray[0] * direction[1] - ray[1] * direction[0])
        facing = float(np.dot(ray, direction)) < 0
        screen_dx = direction[0] * actor.position[1] - actor.position[0] * direction[1]
        return float(sideness), facing, 1.0 if screen_dx >= 0 else -1.0

    def step(self) -> None:
        self.traffic.step()
        self.time += self.traffic.dt

    def advance(self, seconds: float) -> None:
        count = max(1, int(np.ceil(seconds / COARSE_STEP)))
        for _ in range(count):
            self.traffic.step(seconds / count)
        self.time += seconds

    def render(self) -> RenderedFrame:
        rgb = self.background.copy()
        ids = np.zeros((self.height, self.width), np.uint16)
        drawables: list[tuple[float, int, object]] = []
        for actor in self.traffic.all_actors():
            if self._near_view(actor.position, actor.length / 2 + 1.0):
                drawables.append((float(actor.position[1]), actor.track_id, actor))
        for i, prop in enumerate(self.props):
            drawables.append((float(prop.position[1]), -1 - i, prop))
        drawables.sort(key=lambda item: (-item[0], item[1]))
        self._shadows(rgb, [d[2] for d in drawables if isinstance(d[2], Actor)])
        objects: list[tuple[int, int, float]] = []
        for _, _, item in drawables:
            x, y, scale = self.project(item.position)
            if isinstance(item, Prop):
                if item.patch is None:  # static: rasterised once, on first use
                    item.patch = (
                        rasterize(item.parts, np.array([[scale, 0, x], [0, -scale, y]]), vertical_shade=0.15) or False
                    )
                if item.patch:
                    paste(rgb, ids, item.patch, 0)
                continue
            patches = self._parked_patches.get(item.track_id) if item.lane < 0 else None
            if patches is None:
                patches = self._actor_patches(item, x, y, scale)
                if item.lane < 0:  # parked: the camera is static, so is its picture
                    self._parked_patches[item.track_id] = patches
            for track_id, category, patch in patches:
                objects.append((track_id, category, float(patch.footprint.sum())))
                paste(rgb, ids, patch, len(objects))
        return self._mount(RenderedFrame(rgb=rgb, ids=ids, objects=objects))

    def _mount(self, frame: RenderedFrame) -> RenderedFrame:
        """Roll and wind shake of the camera: one similarity warp of image (bilinear) and ids (nearest)."""
        t, p = self.time, self.shake_phase
        amount = self.shake * self.width / 640
        dx = amount * (np.sin(5.3 * t + p[0]) + 0.5 * np.sin(11.9 * t + p[1]))
        dy = amount * (np.sin(4.7 * t + p[2]) + 0.5 * np.sin(13.3 * t + p[3]))
        if self.roll == 0.0 and abs(dx) < 0.05 and abs(dy) < 0.05:
            return frame
        theta = np.radians(abs(self.roll))
        # zoom just enough that the rotated frame still covers the whole image
        zoom = (
            np.cos(theta)
            + max(self.width / self.height, self.height / self.width) * np.sin(theta)
            + 3 * amount / self.height
        )
        matrix = cv2.getRotationMatrix2D((self.width / 2, self.height / 2), self.roll, zoom)
        matrix[:, 2] += (dx, dy)
        size = (self.width, self.height)
        rgb = cv2.warpAffine(frame.rgb, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        ids = cv2.warpAffine(
            frame.ids, matrix, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        objects = [(track, category, area * zoom * zoom) for track, category, area in frame.objects]
        return RenderedFrame(rgb=rgb, ids=ids, objects=objects)

    def _actor_patches(self, actor: Actor, x: float, y: float, scale: float) -> list[tuple[int, int, Patch]]:
        """(track id, category, raster) of an actor (two for a bicycle with its rider)."""
        sideness, facing, mirror = self._view(actor)
        affine = np.array([[scale * mirror, 0, x], [0, -scale, y]])
        top_view = self.cam_height / float(np.hypot(self.cam_height, actor.position[1]))
        out = []
        for track_id, category, parts in self._actor_parts(actor, sideness, facing, scale, top_view):
            patch = rasterize(
                parts, affine, textures=self.textures, texture_offset=(track_id * 37, track_id * 91),
                texture_amplitude=0.14 if category == PERSON else 0.07, vertical_shade=0.2, filled=True,
            )  # fmt: skip
            if patch is not None:
                out.append((track_id, category, patch))
        return out

    @staticmethod
    def _actor_parts(actor: Actor, sideness: float, facing: bool, scale: float, top_view: float):
        if actor.category == PERSON:
            pixels_tall = actor.look.height * scale
            yield (
                actor.track_id,
                PERSON,
                shapes.person_elevation(actor.look, actor.phase, sideness, facing, pixels_tall=pixels_tall),
            )
        elif actor.category == CAR:
            yield actor.track_id, CAR, shapes.car_elevation(actor.look, sideness, facing, top_view)
        elif actor.category == TRUCK:
            yield actor.track_id, TRUCK, shapes.truck_elevation(actor.look, sideness, facing, top_view)
        elif actor.category == BICYCLE:
            yield actor.track_id, BICYCLE, shapes.bicycle_elevation(actor.look, sideness)
            if actor.rider_look is not None:
                yield (
                    actor.rider_id,
                    PERSON,
                    shapes.person_elevation(actor.rider_look, actor.phase, sideness, facing, riding=True),
                )

    def _shadows(self, rgb: np.ndarray, items: list[Actor]) -> None:
        """Soft contact shadows on the ground under each object (image only, never part of a mask)."""
        shade = np.zeros(rgb.shape[:2], np.uint8)
        for actor in items:
            x, y, scale = self.project(actor.position)
            if actor.category == PERSON or actor.category == BICYCLE:
                axes = (0.45 * scale, 0.12 * scale)
            else:
                along = abs(actor.direction[0]) * actor.length + abs(actor.direction[1]) * actor.look.width
                axes = (0.55 * along * scale, 0.35 * scale)
            if axes[0] < 1:
                continue
            cv2.ellipse(
                shade,
                (round(x * 8), round(y * 8)),
                (round(axes[0] * 8), round(axes[1] * 8)),
                0,
                0,
                360,
                255,
                -1,
                cv2.LINE_8,
                3,
            )
        mask = shade > 0
        if mask.any():
            rgb[mask] = (rgb[mask] * 0.62).astype(np.uint8)
