"""Drone footage: a moving overhead camera (pan, yaw, zoom, jitter, oblique tilt) over a large textured world.

Objects are drawn in WORLD coordinates (a top-down map, `res` pixels per metre) together with an instance-id
map, and both are warped into the image by the camera's homography (bilinear for the image, nearest for the
ids), so masks stay exact whatever the camera does. The static world (roads, roofs, fields, parking lots)
is painted lazily in tiles, so a short scene costs only the ground it sees. Motion blur follows the camera's
image motion and touches only the image.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

from synth import actors as shapes
from synth.camera import apply_homography, area_scale, ground_homography
from synth.categories import BICYCLE, CAR, PERSON, TRUCK
from synth.effects import motion_blur
from synth.ground import GroundStyle, NoiseField, paint_ground
from synth.params import rng_from
from synth.raster import Patch, disc, paste, rasterize
from synth.scene import RenderedFrame
from synth.textures import TextureBank
from synth.world import COARSE_STEP, Actor, Lane, Strip, Traffic

TILE = 128  # world pixels per tile side: small tiles waste little ground outside the view


@dataclass(slots=True)
class Block:
    """An axis-aligned lot between roads: x0, y0, x1, y1 in metres, and what is on it."""

    x0: float
    y0: float
    x1: float
    y1: float
    kind: str  # "roofs" | "parking" | "field" | "park"
    colour: tuple[int, int, int]
    angle: float = 0.0  # crop rows
    height: float = 0.0  # buildings, for their shadows
    vertical: bool = False  # parking rows / roof ridge orientation


@dataclass(slots=True)
class Tree:
    position: np.ndarray
    patch: Patch  # canopy in world pixels, absolute position


class DroneScene:
    def __init__(self, seq: np.random.SeedSequence, size: tuple[int, int], fps: float, travel: float = 60.0) -> None:
        """`travel`: the farthest (metres) the camera may wander from its start; short scenes need less world."""
        self.width, self.height = size
        self.fps = fps
        self.dt = 1.0 / fps
        self.time = 0.0
        rng = rng_from(seq, 1)
        self.textures = TextureBank(rng_from(seq, 4))
        self.noise = NoiseField(rng)
        self.style = GroundStyle.random(rng)
        width_scale = self.width / 640
        # ---- camera motion: a slow Lissajous patrol or a back-and-forth transit, yaw drift, zoom, jitter
        self.zoom = float(rng.uniform(7.0, 20.0)) * width_scale
        self.zoom_swing = float(rng.uniform(0.0, 0.2))
        self.tilt = float(rng.uniform(0.0, 0.6)) if rng.random() < 0.6 else 0.0
        self.altitude = float(rng.uniform(50, 150))
        self.yaw0 = float(rng.uniform(0, 2 * np.pi))
        self.yaw_rate = float(rng.uniform(-0.06, 0.06))
        self.amplitude = min(travel, float(rng.uniform(5.0, 40.0)))
        self.omega = rng.uniform(0.02, 0.12, 3)
        self.phase = rng.uniform(0, 2 * np.pi, 8)
        self.jitter = float(rng.uniform(0.02, 0.25))  # metres of shake
        self.shutter = float(rng.uniform(0.3, 0.8))  # fraction of the frame interval the shutter is open
        footprint = self._footprint_radius()
        half = self.amplitude + footprint + 8.0
        self.origin = np.array([-half, -half])  # world metres at world pixel (0, 0)
        self.res = self.zoom * (1 + self.zoom_swing) * 1.05  # world pixels per metre: never upsampled much
        self.size_m = 2 * half
        self.world_px = int(np.ceil(self.size_m * self.res))
        self._tiles: dict[tuple[int, int], np.ndarray] = {}
        self._parked_rasters: dict[int, list[tuple[int, int, Patch, Patch | None]]] = {}
        # ---- layout: a grid of roads, lots between them
        self.strips: list[Strip] = []
        lanes: list[Lane] = []
        density = float(rng.choice([0.6, 1.0, 1.6]))
        self.blocks: list[Block] = []
        xs = self._road_lines(rng, -half, half)
        ys = self._road_lines(rng, -half, half)
        for axis, lines in ((0, xs), (1, ys)):
            for centre, half_width in lines:
                direction = np.array([0.0, 1.0]) if axis == 0 else np.array([1.0, 0.0])
                point = np.array([centre, 0.0]) if axis == 0 else np.array([0.0, centre])
                self._road(rng, point, direction, half_width, density, lanes)
        self.trees: list[Tree] = []
        parked: list[tuple[np.ndarray, np.ndarray, int]] = []
        self._blocks(rng, xs, ys, half, lanes, parked, density)
        self.sun = np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)]) * float(rng.uniform(0.3, 0.9))
        region = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
        self.traffic = Traffic(rng_from(seq, 2), lanes, region, fps, margin=-2.0, max_actors=int(60 + 60 * density))
        for position, direction, category in parked:
            self.traffic.park(category, position, direction)
        self.traffic.populate()

    # ---- camera ---------------------------------------------------------------------------------------
    def pose(self, t: float) -> tuple[np.ndarray, float, float]:
        p, w = self.phase, self.omega
        target = self.amplitude * np.array([np.sin(w[0] * t + p[0]), np.sin(w[1] * t + p[1])])
        shake = self.jitter * np.array(
            [
                np.sin(7.3 * t + p[2]) + 0.5 * np.sin(13.1 * t + p[3]),
                np.sin(6.1 * t + p[4]) + 0.5 * np.sin(11.7 * t + p[5]),
            ]
        )
        yaw = self.yaw0 + self.yaw_rate * t + 0.004 * np.sin(9.1 * t + p[6])
        zoom = self.zoom * (1 + self.zoom_swing * np.sin(w[2] * t + p[7]))
        return target + shake, float(yaw), float(zoom)

    def homography(self, t: float) -> np.ndarray:
        target, yaw, zoom = self.pose(t)
        return ground_homography(target, yaw, self.tilt, self.altitude, zoom, (self.width, self.height))

    def _footprint_radius(self) -> float:
        """Farthest ground point any image corner can show, measured from the camera target."""
        zoom = self.zoom * (1 - self.zoom_swing)
        h = ground_homography(np.zeros(2), 0.0, self.tilt, self.altitude, zoom, (self.width, self.height))
        corners = np.array([[0, 0], [self.width, 0], [self.width, self.height], [0, self.height]], float)
        return float(np.linalg.norm(apply_homography(np.linalg.inv(h), corners), axis=1).max())

    # ---- layout ---------------------------------------------------------------------------------------
    @staticmethod
    def _road_lines(rng, low: float, high: float) -> list[tuple[float, float]]:
        """Centre lines (and half widths) of parallel roads 45-110 m apart; one passes near the middle,
        where the camera patrols: operators fly over streets, not empty fields."""
        anchor = float(rng.uniform(-12, 12))
        positions = [anchor]
        for sign in (-1, 1):
            position = anchor + sign * float(rng.uniform(45, 110))
            while low + 5 < position < high:
                positions.append(position)
                position += sign * float(rng.uniform(45, 110))
        lines = []
        for position in sorted(positions):
            half_width = (3.6 if rng.random() < 0.7 else 7.2) + float(rng.uniform(0.2, 0.8))
            lines.append((position, half_width))
        return lines

    def _road(self, rng, point, direction, half_width, density, lanes: list[Lane]) -> None:
        normal = np.array([-direction[1], direction[0]])
        self.strips.append(Strip(point, direction, half_width, "road"))
        each_way = 1 if half_width < 5 else 2
        walk_w = float(rng.uniform(2.0, 3.5))
        for side in (-1, 1):
            heading = direction if side < 0 else -direction
            for k in range(each_way):
                lanes.append(
                    Lane(
                        point + normal * side * (1.75 + 3.5 * k), heading, "vehicle", 0.22 * density, lateral_jitter=0.2
                    )
                )
            if rng.random() < 0.7:
                lanes.append(
                    Lane(
                        point + normal * side * (half_width - 0.7),
                        heading,
                        "bike",
                        0.045 * density,
                        lateral_jitter=0.15,
                    )
                )
            walk = point + normal * side * (half_width + walk_w / 2)
            self.strips.append(Strip(walk, direction, walk_w / 2, "sidewalk"))
            for way in (direction, -direction):
                lanes.append(Lane(walk, way, "walk", 0.09 * density, lateral_jitter=walk_w / 2 - 0.3))

    def _blocks(self, rng, xs, ys, half, lanes: list[Lane], parked, density) -> None:
        def edges(lines):
            cuts = (
                [(-half - 50, -half - 50)]
                + [(c - hw - 4.0, c + hw + 4.0) for c, hw in lines]
                + [(half + 50, half + 50)]
            )
            return [(a[1], b[0]) for a, b in itertools.pairwise(cuts) if b[0] - a[1] > 6]

        for x0, x1 in edges(xs):
            for y0, y1 in edges(ys):
                kind = rng.choice(["roofs", "parking", "field", "park"], p=[0.4, 0.15, 0.2, 0.25])
                if kind == "roofs":
                    self._buildings(rng, x0, y0, x1, y1)
                elif kind == "parking":
                    vertical = bool(rng.random() < 0.5)
                    self.blocks.append(Block(x0, y0, x1, y1, "parking", self.style.asphalt, vertical=vertical))
                    self._park_cars(rng, x0, y0, x1, y1, vertical, parked)
                elif kind == "field":
                    colour = [(96, 120, 50), (150, 140, 70), (120, 95, 60), (80, 110, 45)][int(rng.integers(4))]
                    self.blocks.append(Block(x0, y0, x1, y1, "field", colour, angle=float(rng.uniform(0, np.pi))))
                else:
                    self._park(rng, x0, y0, x1, y1, lanes, density)

    def _buildings(self, rng, x0, y0, x1, y1) -> None:
        x = x0 + float(rng.uniform(1, 4))
        while x < x1 - 8:
            bw = min(float(rng.uniform(8, 25)), x1 - x - 1)
            y = y0 + float(rng.uniform(1, 4))
            while y < y1 - 8:
                bh = min(float(rng.uniform(8, 25)), y1 - y - 1)
                colour = [(150, 60, 45), (110, 110, 115), (90, 70, 60), (170, 160, 150), (60, 80, 90)][
                    int(rng.integers(5))
                ]
                self.blocks.append(
                    Block(x, y, x + bw, y + bh, "roofs", colour, height=float(rng.uniform(4, 20)), vertical=bw < bh)
                )
                y += bh + float(rng.uniform(2, 6))
            x += bw + float(rng.uniform(2, 6))

    def _park_cars(self, rng, x0, y0, x1, y1, vertical, parked) -> None:
        # stalls 2.6 m wide, 5 m deep, in double rows along the lot
        span = (x0, x1) if not vertical else (y0, y1)
        rows = (y0, y1) if not vertical else (x0, x1)
        row = rows[0] + 1.0
        while row + 5 < rows[1]:
            slot = span[0] + 1.5
            while slot + 2.6 < span[1]:
                if rng.random() < 0.6:
                    along, across = slot + 1.3, row + 2.5
                    position = np.array([along, across]) if not vertical else np.array([across, along])
                    direction = np.array([0.0, 1.0]) if not vertical else np.array([1.0, 0.0])
                    parked.append((position, direction * (1 if rng.random() < 0.5 else -1), CAR))
                slot += 2.6
            row += 5.0 if int((row - rows[0]) / 5.0) % 2 == 0 else 11.0  # a 6 m aisle after each double row

    def _park(self, rng, x0, y0, x1, y1, lanes: list[Lane], density) -> None:
        self.blocks.append(Block(x0, y0, x1, y1, "park", self.style.base))
        for _ in range(int(rng.integers(1, 3))):
            start = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
            angle = rng.uniform(0, 2 * np.pi)
            lanes.append(
                Lane(start, np.array([np.cos(angle), np.sin(angle)]), "walk", 0.06 * density, lateral_jitter=1.5)
            )
        area = (x1 - x0) * (y1 - y0)
        for _ in range(int(min(rng.poisson(area / 400), 40))):
            centre = np.array([rng.uniform(x0 + 2, x1 - 2), rng.uniform(y0 + 2, y1 - 2)])
            self._add_tree(rng, centre)

    def _add_tree(self, rng, centre: np.ndarray) -> None:
        green = np.array([rng.integers(30, 70), rng.integers(70, 120), rng.integers(25, 60)])
        parts = []
        radius = float(rng.uniform(1.8, 4.0))
        for _ in range(int(rng.integers(5, 10))):
            offset = rng.normal(0, radius * 0.35, 2)
            tone = tuple(int(v) for v in np.clip(green * rng.uniform(0.7, 1.3), 0, 255))
            parts.append(disc(offset, radius * float(rng.uniform(0.45, 0.75)), tone))
        u, v = (centre - self.origin) * self.res
        patch = rasterize(parts, np.array([[self.res, 0, u], [0, self.res, v]]), textures=self.textures,
                          texture_offset=(int(u), int(v)), texture_amplitude=0.25)  # fmt: skip
        if patch is not None:
            self.trees.append(Tree(centre, patch))

    # ---- static world, painted lazily ----------------------------------------------------------------
    def _tile(self, tx: int, ty: int) -> np.ndarray:
        key = (tx, ty)
        tile = self._tiles.get(key)
        if tile is None:
            tile = self._paint_tile(tx, ty)
            self._tiles[key] = tile
        return tile

    def _paint_tile(self, tx: int, ty: int) -> np.ndarray:
        u = np.arange(tx * TILE, (tx + 1) * TILE, dtype=np.float32) + 0.5
        v = np.arange(ty * TILE, (ty + 1) * TILE, dtype=np.float32) + 0.5
        x = np.broadcast_to(u[None, :] / self.res + self.origin[0], (TILE, TILE))
        y = np.broadcast_to(v[:, None] / self.res + self.origin[1], (TILE, TILE))
        rgb = paint_ground(x, y, self.strips, self.style, self.noise, detail=min(1.0, self.res / 12))
        fine = self.noise.sample(x - 17.0, y + 29.0, 4.0)
        reach = np.abs(self.sun).max() * 10.0  # roofs cast shadows up to this far (height 20 m)
        for block in self.blocks:
            pad = reach if block.kind == "roofs" else 0.0
            if (
                block.x1 + pad < x[0, 0]
                or block.x0 - pad > x[0, -1]
                or block.y1 + pad < y[0, 0]
                or block.y0 - pad > y[-1, 0]
            ):
                continue
            self._paint_block(rgb, x, y, fine, block)
        for tree in self.trees:  # canopy shadows on the ground
            cx, cy = tree.position + self.sun * 3.0
            inside = (x - cx) ** 2 + (y - cy) ** 2 < (tree.patch.alpha.shape[0] / self.res / 2) ** 2
            rgb[inside] *= 0.6
        return np.clip(rgb, 0, 255).astype(np.uint8)

    def _paint_block(self, rgb, x, y, fine, block: Block) -> None:
        if block.kind == "roofs":
            sx, sy = self.sun * block.height * 0.5
            shadow = (x >= block.x0 + sx) & (x < block.x1 + sx) & (y >= block.y0 + sy) & (y < block.y1 + sy)
            rgb[shadow] *= 0.55
        inside = (x >= block.x0) & (x < block.x1) & (y >= block.y0) & (y < block.y1)
        if not inside.any():
            return
        colour = np.asarray(block.colour, np.float32)
        if block.kind == "roofs":
            across = (x - (block.x0 + block.x1) / 2) if block.vertical else (y - (block.y0 + block.y1) / 2)
            along = y if block.vertical else x
            ridge_side = np.where(across < 0, 1.0, 0.78)
            rows = ((along * 3.0) % 1.0 < 0.15) * 0.12
            edge = np.minimum(np.minimum(x - block.x0, block.x1 - x), np.minimum(y - block.y0, block.y1 - y)) < 0.35
            shade = ridge_side * (1 - rows) * (1 + 0.1 * fine) * np.where(edge, 0.65, 1.0)
            rgb[inside] = colour * shade[inside][:, None]
        elif block.kind == "parking":
            base = colour * (1 + 0.12 * fine[inside])[:, None]
            rgb[inside] = base
            along = y if block.vertical else x
            across = x if block.vertical else y
            start = block.x0 if block.vertical else block.y0
            row_pos = (across - start - 1.0) % 16.0
            in_row = row_pos < 10.0
            line = (np.abs((along - (block.y0 if block.vertical else block.x0) - 1.5) % 2.6) < 0.1) & in_row
            paint = inside & line
            rgb[paint] = (235, 235, 230)
        elif block.kind == "field":
            rows = np.sin((x * np.cos(block.angle) + y * np.sin(block.angle)) * 2 * np.pi / 0.9)
            shade = 1 + 0.18 * rows + 0.15 * fine
            rgb[inside] = colour * shade[inside][:, None]

    def _world_region(self, u0: int, v0: int, u1: int, v1: int, quad: np.ndarray) -> np.ndarray:
        """World map pixels [v0:v1, u0:u1] assembled from tiles, painting only tiles that the camera's
        ground quadrilateral `quad` (world pixels) touches; the rest of the box is never seen."""
        out = np.zeros((v1 - v0, u1 - u0, 3), np.uint8)
        for ty in range(v0 // TILE, (v1 - 1) // TILE + 1):
            for tx in range(u0 // TILE, (u1 - 1) // TILE + 1):
                tile = self._tiles.get((tx, ty))
                if tile is None:
                    if not _square_meets_quad(tx * TILE - 1, ty * TILE - 1, TILE + 2, quad):
                        continue
                    tile = self._tile(tx, ty)
                ax0, ay0 = max(u0, tx * TILE), max(v0, ty * TILE)
                ax1, ay1 = min(u1, (tx + 1) * TILE), min(v1, (ty + 1) * TILE)
                out[ay0 - v0 : ay1 - v0, ax0 - u0 : ax1 - u0] = tile[
                    ay0 - ty * TILE : ay1 - ty * TILE, ax0 - tx * TILE : ax1 - tx * TILE
                ]
        return out

    # ---- per frame ------------------------------------------------------------------------------------
    def step(self) -> None:
        self.traffic.step()
        self.time += self.dt

    def advance(self, seconds: float) -> None:
        count = max(1, int(np.ceil(seconds / COARSE_STEP)))
        for _ in range(count):
            self.traffic.step(seconds / count)
        self.time += seconds

    def render(self) -> RenderedFrame:
        to_metres = np.array([[1 / self.res, 0, self.origin[0]], [0, 1 / self.res, self.origin[1]], [0, 0, 1]])
        image_from_world = self.homography(self.time) @ to_metres
        corners = np.array([[0, 0], [self.width, 0], [self.width, self.height], [0, self.height]], float)
        seen = apply_homography(np.linalg.inv(image_from_world), corners)
        u0, v0 = np.floor(seen.min(axis=0)).astype(int) - 2
        u1, v1 = np.ceil(seen.max(axis=0)).astype(int) + 3
        u0, v0 = max(int(u0), 0), max(int(v0), 0)
        u1, v1 = min(int(u1), self.world_px), min(int(v1), self.world_px)
        rgb = self._world_region(u0, v0, u1, v1, seen)
        ids = np.zeros(rgb.shape[:2], np.uint16)
        shift = np.array([[1, 0, u0], [0, 1, v0], [0, 0, 1]], float)
        image_from_roi = image_from_world @ shift
        visible: list[Actor] = []
        for actor in self.traffic.all_actors():
            u, v = (actor.position - self.origin) * self.res
            reach = actor.length * self.res
            if u0 - reach <= u <= u1 + reach and v0 - reach <= v <= v1 + reach:
                visible.append(actor)
        visible.sort(key=lambda a: (a.height, a.track_id))
        drawings = []
        for actor in visible:
            rasters = self._parked_rasters.get(actor.track_id) if actor.lane < 0 else None
            if rasters is None:
                rasters = self._actor_rasters(actor)
                if actor.lane < 0:  # parked: the same picture in the world every frame
                    self._parked_rasters[actor.track_id] = rasters
            drawings += [(actor, *raster) for raster in rasters]
        for _, _, _, _, shadow in drawings:  # shadows first, image only
            if shadow is not None:
                _darken(rgb, _shifted(shadow, u0, v0), 0.55)
        objects: list[tuple[int, int, float]] = []
        for actor, track_id, category, patch, _ in drawings:
            centre = (actor.position - self.origin) * self.res
            objects.append((track_id, category, float(patch.footprint.sum()) * area_scale(image_from_world, centre)))
            paste(rgb, ids, _shifted(patch, u0, v0), len(objects))
        for tree in self.trees:  # canopies hide what walks under them
            paste(rgb, ids, _shifted(tree.patch, u0, v0), 0)
        size = (self.width, self.height)
        frame = cv2.warpPerspective(rgb, image_from_roi, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        id_map = cv2.warpPerspective(
            ids, image_from_roi, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        # motion blur: where the image centre's ground point was while the shutter was open
        centre = np.array([[self.width / 2, self.height / 2]])
        ground = apply_homography(np.linalg.inv(image_from_world), centre)
        earlier = apply_homography(self.homography(self.time - self.shutter * self.dt) @ to_metres, ground)
        frame = motion_blur(frame, (centre - earlier)[0])
        return RenderedFrame(rgb=frame, ids=id_map, objects=objects)

    def _actor_rasters(self, actor: Actor) -> list[tuple[int, int, Patch, Patch | None]]:
        """(track id, category, raster, shadow raster) in world pixels; two entries for a ridden bicycle."""
        u, v = (actor.position - self.origin) * self.res
        c, s = actor.direction
        affine = self.res * np.array([[c, -s, 0.0], [s, c, 0.0]])
        affine[:, 2] = (u, v)
        shadow_affine = affine.copy()
        shadow_affine[:, 2] += self.sun * actor.height * 0.5 * self.res
        out = []
        for track_id, category, parts in self._actor_parts(actor):
            patch = rasterize(parts, affine, textures=self.textures, texture_offset=(track_id * 37, track_id * 91),
                              texture_amplitude=0.12 if category == PERSON else 0.06, filled=True)  # fmt: skip
            if patch is not None:
                out.append((track_id, category, patch, rasterize(parts, shadow_affine)))
        return out

    @staticmethod
    def _actor_parts(actor: Actor):
        if actor.category == PERSON:
            yield actor.track_id, PERSON, shapes.person_plan(actor.look, actor.phase)
        elif actor.category == CAR:
            yield actor.track_id, CAR, shapes.car_plan(actor.look)
        elif actor.category == TRUCK:
            yield actor.track_id, TRUCK, shapes.truck_plan(actor.look)
        elif actor.category == BICYCLE:
            yield actor.track_id, BICYCLE, shapes.bicycle_plan(actor.look)
            if actor.rider_look is not None:
                yield actor.rider_id, PERSON, shapes.person_plan(actor.rider_look, actor.phase, riding=True)


def _shifted(patch: Patch, u0: int, v0: int) -> Patch:
    """The same raster placed relative to a region of the world map starting at (u0, v0)."""
    return Patch(patch.rgb, patch.alpha, patch.x0 - u0, patch.y0 - v0, patch.outline)


def _darken(rgb: np.ndarray, patch: Patch, factor: float) -> None:
    height, width = rgb.shape[:2]
    ph, pw = patch.alpha.shape
    fx0, fy0 = max(patch.x0, 0), max(patch.y0, 0)
    fx1, fy1 = min(patch.x0 + pw, width), min(patch.y0 + ph, height)
    if fx0 >= fx1 or fy0 >= fy1:
        return
    alpha = patch.alpha[fy0 - patch.y0 : fy1 - patch.y0, fx0 - patch.x0 : fx1 - patch.x0]
    region = rgb[fy0:fy1, fx0:fx1]
    region[alpha] = (region[alpha] * factor).astype(np.uint8)


def _square_meets_quad(x0: float, y0: float, side: float, quad: np.ndarray) -> bool:
    """Whether the axis-aligned square and the convex quadrilateral overlap (separating axis test)."""
    square = np.array([[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side]])
    edges = np.roll(quad, -1, axis=0) - quad
    axes = np.vstack([[1.0, 0.0], [0.0, 1.0], np.column_stack([-edges[:, 1], edges[:, 0]])])
    for axis in axes:
        a, b = square @ axis, quad @ axis
        if a.max() < b.min() or b.max() < a.min():
            return False
    return True
