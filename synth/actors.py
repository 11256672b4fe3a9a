"""What people, cars, trucks and bicycles look like, as lists of parts in metres.

Two projections: *elevation* (seen from the side/front by a surveillance camera; x along the direction
of travel, y up, origin on the ground under the object's centre) and *plan* (seen from above by a drone;
x forward, y to the left, origin at the object's centre). Mirroring for objects moving left is left to
the caller's transform. `sideness` (0 = seen head-on, 1 = seen from the side) blends the two elevations
of a walking person so gait and body width follow the viewing angle.
"""

from __future__ import annotations

import numpy as np

from synth.appearance import PersonLook, VehicleLook, darker, lighter
from synth.raster import Part, capsule, disc, ellipse, poly

GLASS = (46, 58, 72)
GLASS_LIGHT = (92, 112, 130)
TYRE = (24, 24, 26)
HUB = (150, 150, 155)
HEADLIGHT = (240, 236, 210)
TAILLIGHT = (190, 25, 25)
PLATE = (230, 230, 220)


def _off(point, dx: float, dy: float) -> np.ndarray:
    """`point` moved by (dx, dy)."""
    return np.add(point, (dx, dy), dtype=float)


def _blend(side: float, front: float, sideness: float) -> float:
    return side * sideness + front * (1.0 - sideness)


def _two_link(hip: np.ndarray, foot: np.ndarray, upper: float, lower: float, bend_forward: bool) -> np.ndarray:
    """Knee position of a two-segment limb reaching from `hip` to `foot` (the knee points forward)."""
    delta = foot - hip
    dist = float(np.hypot(*delta))
    dist = min(max(dist, 1e-6), upper + lower - 1e-6)
    along = (upper**2 - lower**2 + dist**2) / (2 * dist)
    across = np.sqrt(max(upper**2 - along**2, 0.0))
    unit = delta / max(float(np.hypot(*delta)), 1e-6)
    normal = np.array([-unit[1], unit[0]])
    return hip + unit * along + normal * across * (-1 if bend_forward else 1)


def person_elevation(
    look: PersonLook,
    phase: float,
    sideness: float,
    facing_camera: bool,
    riding: bool = False,
    pixels_tall: float = 100.0,
) -> list[Part]:
    """A person seen by a surveillance camera; `phase` is the gait (or pedalling) angle in radians.

    Below ~16 pixels tall, a simpler figure (one capsule per limb) gives the same silhouette for less work.
    """
    if pixels_tall < 16 and not riding:
        return _distant_person(look, phase, sideness)
    h = look.height
    scale = h / 1.72
    head_r = 0.115 * scale
    shoulder_y, hip_y = 0.815 * h, 0.52 * h
    frontness = 1.0 - sideness
    shoulder_hw = _blend(0.1, 0.2 * look.build, sideness) * scale
    hip_hw = _blend(0.09, 0.16 * look.build, sideness) * scale
    thigh, shin = 0.245 * h, 0.25 * h
    upper_arm, forearm = 0.18 * h, 0.16 * h
    lean = 0.0
    pelvis = np.array([0.0, hip_y])
    if riding:  # sitting on a saddle ~0.9 m high, leaning towards the handlebar
        pelvis = np.array([-0.18 * sideness, 0.88 + 0.05 * (scale - 1)])
        lean = 0.45 * sideness
    neck = pelvis + np.array([np.sin(lean), np.cos(lean)]) * (shoulder_y - hip_y)
    parts: list[Part] = []
    leg_parts: list[list[Part]] = []
    arm_parts: list[list[Part]] = []
    for side in (-1, 1):  # far limb first, near limb second
        hip = pelvis + np.array([side * hip_hw * 0.55 * frontness, 0.0])
        if riding:
            crank = (
                np.array([0.0, 0.3])
                + np.array([np.cos(phase + (side > 0) * np.pi), np.sin(phase + (side > 0) * np.pi)]) * 0.17
            )
            foot = np.array([crank[0] * sideness + side * 0.13 * frontness, crank[1]])
            knee = _two_link(hip, foot, thigh, shin, bend_forward=True)
        else:
            swing = side * 0.42 * np.sin(phase)
            knee_bend = 0.55 * max(0.0, np.sin(phase + side * np.pi / 2 + np.pi / 2))
            knee = hip + np.array([np.sin(swing) * sideness, -np.cos(swing)]) * thigh
            shin_angle = swing - knee_bend
            foot = knee + np.array([np.sin(shin_angle) * sideness, -np.cos(shin_angle)]) * shin
            foot[1] = max(foot[1], 0.02) + frontness * 0.04 * max(0.0, side * np.sin(phase))
        toe = foot + np.array([0.12 * sideness, 0.0])
        leg = [capsule(hip, knee, 0.075 * scale, look.trousers), capsule(knee, foot, 0.058 * scale, look.trousers)]
        leg.append(capsule(foot, toe, 0.045 * scale, look.shoes))
        leg_parts.append(leg)
        shoulder = neck + np.array([side * (shoulder_hw - 0.04) * frontness, -0.04])
        if riding:
            hand = np.array([0.42 * sideness + side * 0.25 * frontness, 1.0])
            elbow = _two_link(shoulder, hand, upper_arm, forearm, bend_forward=False)
        else:
            arm_swing = -side * 0.38 * np.sin(phase)
            elbow = (
                shoulder
                + np.array([np.sin(arm_swing) * sideness + side * 0.03 * frontness, -np.cos(arm_swing)]) * upper_arm
            )
            fore_angle = arm_swing + 0.35 * sideness
            hand = (
                elbow
                + np.array([np.sin(fore_angle) * sideness + side * 0.02 * frontness, -np.cos(fore_angle)]) * forearm
            )
        sleeve = look.skin if look.short_sleeves else look.shirt
        arm = [capsule(shoulder, elbow, 0.05 * scale, look.shirt), capsule(elbow, hand, 0.042 * scale, sleeve)]
        arm.append(disc(hand, 0.045 * scale, look.skin))
        arm_parts.append(arm)

    torso_dir = neck - pelvis
    torso_normal = np.array([torso_dir[1], -torso_dir[0]]) / max(float(np.hypot(*torso_dir)), 1e-6)
    torso = [
        neck - torso_normal * shoulder_hw,
        neck + torso_normal * shoulder_hw,
        pelvis + torso_normal * hip_hw,
        pelvis - torso_normal * hip_hw,
    ]
    if look.backpack is not None and not facing_camera:
        back = -torso_normal * (0.16 if sideness > 0.5 else 0.0)
        bag_hw = 0.14 * scale if sideness <= 0.5 else 0.08 * scale
        centre_top, centre_bottom = neck * 0.9 + pelvis * 0.1 + back, neck * 0.35 + pelvis * 0.65 + back
        bag = [centre_top - torso_normal * bag_hw, centre_top + torso_normal * bag_hw]
        bag += [centre_bottom + torso_normal * bag_hw, centre_bottom - torso_normal * bag_hw]
        backpack = [poly(bag, look.backpack)]
    else:
        backpack = []

    parts += arm_parts[0] + leg_parts[0]
    if sideness > 0.5:
        parts += backpack
    parts += leg_parts[1]
    parts.append(poly(torso, look.shirt, stripes=look.shirt_stripes))
    if look.skirt and not riding:
        parts.append(
            poly(
                [
                    _off(pelvis, -hip_hw, 0.05),
                    _off(pelvis, hip_hw, 0.05),
                    [hip_hw * 1.6, 0.3 * h],
                    [-hip_hw * 1.6, 0.3 * h],
                ],
                look.trousers,
            )
        )
    if sideness <= 0.5:
        parts += backpack
    parts += arm_parts[1]
    head = neck + np.array([np.sin(lean), np.cos(lean)]) * (0.06 * scale + head_r)
    parts.append(capsule(neck, neck + (head - neck) * 0.4, 0.045 * scale, look.skin))
    parts.append(disc(head, head_r, look.skin))
    if not facing_camera and sideness < 0.5:  # seen from behind: the back of the head is hair
        parts.append(disc(_off(head, 0, 0.01), head_r * 1.02, look.hair))
    else:
        parts.append(
            ellipse(_off(head, -0.035 * sideness, 0.045 * scale), (head_r * 0.98, head_r * 0.62), 0, look.hair)
        )
    if look.hair_long:
        parts.append(
            capsule(
                _off(head, -0.06 * sideness, 0.02), _off(head, -0.07 * sideness, -0.2 * scale), 0.07 * scale, look.hair
            )
        )
    if look.hat is not None:
        parts.append(ellipse(_off(head, 0, head_r * 0.55), (head_r * 1.45, head_r * 0.22), 0, look.hat))
        parts.append(disc(_off(head, 0, head_r * 0.7), head_r * 0.85, look.hat))
    return parts


def _distant_person(look: PersonLook, phase: float, sideness: float) -> list[Part]:
    h = look.height
    scale = h / 1.72
    hip, neck = np.array([0.0, 0.52 * h]), np.array([0.0, 0.8 * h])
    half = _blend(0.1, 0.18 * look.build, sideness) * scale
    parts: list[Part] = []
    for side in (-1, 1):
        swing = side * 0.42 * np.sin(phase)
        foot = hip + np.array([np.sin(swing) * sideness * 0.5 * h + side * 0.08 * (1 - sideness), -0.5 * h])
        parts.append(capsule(hip, foot, 0.07 * scale, look.trousers))
        hand = neck + np.array([-np.sin(swing) * sideness * 0.34 * h + side * half * (1 - sideness), -0.34 * h])
        parts.append(capsule(_off(neck, side * half * (1 - sideness) * 0.8, 0.0), hand, 0.045 * scale, look.shirt))
    parts.append(
        poly([neck - [half, 0], _off(neck, half, 0), _off(hip, half * 0.8, 0), hip - [half * 0.8, 0]], look.shirt)
    )
    parts.append(disc(_off(neck, 0.0, 0.11 * scale), 0.115 * scale, look.skin))
    parts.append(ellipse(_off(neck, 0.0, 0.16 * scale), (0.11 * scale, 0.07 * scale), 0, look.hair))
    return parts


def car_elevation(look: VehicleLook, sideness: float, facing_camera: bool, top_view: float = 0.0) -> list[Part]:
    """A car from the side (sideness > 0.55) or from the front/back.

    `top_view` is the sine of the angle the camera looks down at it: that much of the roof (and of the
    bonnet or boot lid) shows above the outline.
    """
    paint, trim = look.paint, darker(look.paint, 0.55)
    half_l, half_w, roof = look.length / 2, look.width / 2, look.height
    sill, belt = 0.28, look.height * (0.58 if look.style < 2 else 0.55)
    wr = look.wheel_radius
    if sideness <= 0.55:
        parts = [
            poly(
                [
                    [-half_w + 0.05, 0.12],
                    [half_w - 0.05, 0.12],
                    [half_w - 0.02, belt - 0.03],
                    [-half_w + 0.02, belt - 0.03],
                ],
                TYRE,
            ),
            poly(
                [
                    [-half_w, sill],
                    [half_w, sill],
                    [half_w, belt - 0.08],
                    [half_w - 0.06, belt],
                    [-half_w + 0.06, belt],
                    [-half_w, belt - 0.08],
                ],
                paint,
            ),
            poly([[-half_w + 0.1, belt], [half_w - 0.1, belt], [half_w - 0.26, roof], [-half_w + 0.26, roof]], paint),
            poly(
                [
                    [-half_w + 0.18, belt + 0.04],
                    [half_w - 0.18, belt + 0.04],
                    [half_w - 0.3, roof - 0.07],
                    [-half_w + 0.3, roof - 0.07],
                ],
                GLASS,
            ),
            poly(
                [[-half_w + 0.2, belt + 0.06], [-half_w + 0.45, belt + 0.06], [-half_w + 0.4, roof - 0.12]], GLASS_LIGHT
            ),
            poly([[-0.25, sill + 0.06], [0.25, sill + 0.06], [0.25, sill + 0.19], [-0.25, sill + 0.19]], PLATE),
        ]
        light = HEADLIGHT if facing_camera else TAILLIGHT
        for side in (-1, 1):
            x_out, x_in = side * (half_w - 0.05), side * (half_w - 0.38)
            parts.append(
                poly([[x_out, belt - 0.2], [x_in, belt - 0.2], [x_in, belt - 0.08], [x_out, belt - 0.08]], light)
            )
            parts.append(
                poly(
                    [
                        [side * half_w, belt + 0.02],
                        [side * (half_w + 0.13), belt + 0.05],
                        [side * (half_w + 0.12), belt + 0.14],
                        [side * half_w, belt + 0.13],
                    ],
                    trim,
                )
            )
        if facing_camera:
            parts.append(
                poly([[-0.45, sill + 0.22], [0.45, sill + 0.22], [0.45, belt - 0.22], [-0.45, belt - 0.22]], trim)
            )
        if top_view > 0:
            roof_band = (1.4 if look.style < 2 else 2.2) * top_view
            roof_top = [
                [-half_w + 0.26, roof - 0.02],
                [half_w - 0.26, roof - 0.02],
                [half_w - 0.3, roof + roof_band],
                [-half_w + 0.3, roof + roof_band],
            ]
            parts.insert(0, poly(roof_top, lighter(paint)))
            lid = 0.9 * top_view  # bonnet or boot lid, nearer than the cabin: hides the screen's foot
            parts.append(
                poly(
                    [
                        [-half_w + 0.06, belt - 0.02],
                        [half_w - 0.06, belt - 0.02],
                        [half_w - 0.12, belt + lid],
                        [-half_w + 0.12, belt + lid],
                    ],
                    paint,
                )
            )
        return parts

    # side view, travelling towards +x
    hood = look.length * (0.3 if look.style == 0 else 0.26)
    trunk = look.length * [0.2, 0.05, 0.03][look.style]
    screen_base = half_l - hood
    roof_front = screen_base - (0.55 if look.style < 2 else 0.35)
    rear_base = -half_l + trunk
    roof_rear = rear_base + (0.5, 0.12, 0.05)[look.style]
    parts = [
        poly(
            [
                [-half_l, sill + 0.02],
                [half_l - 0.05, sill + 0.02],
                [half_l, belt - 0.14],
                [half_l - 0.25, belt - 0.02],
                [-half_l + 0.12, belt],
                [-half_l, belt - 0.1],
            ],
            paint,
        ),
        poly([[screen_base, belt - 0.02], [roof_front, roof], [roof_rear, roof], [rear_base, belt - 0.02]], paint),
    ]
    inset = 0.07
    window = [
        [screen_base - 0.12, belt + 0.03],
        [roof_front - 0.03, roof - inset],
        [roof_rear + 0.06, roof - inset],
        [rear_base + 0.12, belt + 0.03],
    ]
    parts.append(poly(window, GLASS))
    pillar_x = (screen_base + rear_base) / 2 + 0.1
    parts.append(capsule([pillar_x, belt], [pillar_x - 0.05, roof - 0.03], 0.045, paint))
    parts.append(
        poly(
            [[screen_base - 0.2, belt + 0.05], [screen_base - 0.45, belt + 0.05], [roof_front - 0.1, roof - 0.12]],
            GLASS_LIGHT,
        )
    )
    parts.append(capsule([pillar_x, sill + 0.1], [pillar_x, belt - 0.05], 0.012, trim))
    parts.append(capsule([screen_base - 0.3, belt - 0.12], [-half_l + 0.4, belt - 0.1], 0.015, trim))
    parts.append(
        poly(
            [
                [half_l - 0.02, belt - 0.2],
                [half_l - 0.2, belt - 0.1],
                [half_l - 0.3, belt - 0.18],
                [half_l - 0.05, belt - 0.26],
            ],
            HEADLIGHT,
        )
    )
    parts.append(
        poly(
            [
                [-half_l, belt - 0.12],
                [-half_l + 0.2, belt - 0.05],
                [-half_l + 0.18, belt - 0.18],
                [-half_l + 0.01, belt - 0.22],
            ],
            TAILLIGHT,
        )
    )
    for x in (half_l - 0.85, -half_l + 0.8):
        parts.append(disc([x, wr], wr * 1.12, (30, 30, 32)))
        parts.append(disc([x, wr], wr, TYRE))
        parts.append(disc([x, wr], wr * 0.58, HUB))
    if top_view > 0:
        band = look.width * 0.8 * top_view
        parts.insert(
            0,
            poly(
                [
                    [roof_rear, roof - 0.02],
                    [roof_front, roof - 0.02],
                    [roof_front - 0.08, roof + band],
                    [roof_rear + 0.08, roof + band],
                ],
                lighter(paint),
            ),
        )
    return parts


def truck_elevation(look: VehicleLook, sideness: float, facing_camera: bool, top_view: float = 0.0) -> list[Part]:
    """A box truck (cab + cargo box) or a flatbed with a load; `top_view` as for `car_elevation`."""
    half_l, half_w, top = look.length / 2, look.width / 2, look.height
    cab_len, cab_top, chassis = 2.2, min(look.height, 3.0) * 0.88, 1.05
    wr = look.wheel_radius
    cargo, paint = look.cargo, look.paint
    if sideness <= 0.55:
        parts = [
            poly([[-half_w + 0.1, 0.0], [half_w - 0.1, 0.0], [half_w - 0.1, chassis], [-half_w + 0.1, chassis]], TYRE),
        ]
        if facing_camera:
            if look.style == 0:
                parts.append(poly([[-half_w, cab_top], [half_w, cab_top], [half_w, top], [-half_w, top]], cargo))
            parts += [
                poly(
                    [
                        [-half_w, 0.45],
                        [half_w, 0.45],
                        [half_w, cab_top - 0.1],
                        [half_w - 0.15, cab_top],
                        [-half_w + 0.15, cab_top],
                        [-half_w, cab_top - 0.1],
                    ],
                    paint,
                ),
                poly(
                    [
                        [-half_w + 0.15, cab_top - 0.85],
                        [half_w - 0.15, cab_top - 0.85],
                        [half_w - 0.2, cab_top - 0.12],
                        [-half_w + 0.2, cab_top - 0.12],
                    ],
                    GLASS,
                ),
                poly([[-0.7, 0.6], [0.7, 0.6], [0.7, 1.1], [-0.7, 1.1]], darker(paint, 0.5)),
                poly(
                    [[-half_w + 0.1, 0.6], [-half_w + 0.4, 0.6], [-half_w + 0.4, 0.8], [-half_w + 0.1, 0.8]], HEADLIGHT
                ),
                poly([[half_w - 0.1, 0.6], [half_w - 0.4, 0.6], [half_w - 0.4, 0.8], [half_w - 0.1, 0.8]], HEADLIGHT),
            ]
            for side in (-1, 1):
                parts.append(
                    capsule([side * half_w, cab_top - 0.5], [side * (half_w + 0.25), cab_top - 0.6], 0.05, TYRE)
                )
        else:
            body_top = top if look.style == 0 else chassis + 0.9
            parts.append(
                poly(
                    [[-half_w, chassis - 0.2], [half_w, chassis - 0.2], [half_w, body_top], [-half_w, body_top]],
                    cargo,
                    stripes=None,
                )
            )
            parts.append(capsule([0, chassis], [0, body_top - 0.1], 0.02, darker(cargo, 0.6)))
            for side in (-1, 1):
                parts.append(
                    poly(
                        [
                            [side * (half_w - 0.05), 0.55],
                            [side * (half_w - 0.3), 0.55],
                            [side * (half_w - 0.3), 0.75],
                            [side * (half_w - 0.05), 0.75],
                        ],
                        TAILLIGHT,
                    )
                )
        if top_view > 0:
            box_len = look.length - cab_len - 0.15
            if look.style == 0 or not facing_camera:
                box_top = top if look.style == 0 else chassis + 0.9
                band = box_len * top_view
                box = [
                    [-half_w, box_top - 0.02],
                    [half_w, box_top - 0.02],
                    [half_w - 0.1, box_top + band],
                    [-half_w + 0.1, box_top + band],
                ]
                parts.insert(0, poly(box, lighter(cargo)))
            if facing_camera:  # the cab roof, in front of the box
                band = cab_len * 0.8 * top_view
                parts.append(
                    poly(
                        [
                            [-half_w + 0.15, cab_top - 0.02],
                            [half_w - 0.15, cab_top - 0.02],
                            [half_w - 0.2, cab_top + band],
                            [-half_w + 0.2, cab_top + band],
                        ],
                        lighter(paint),
                    )
                )
        return parts

    cab_back = half_l - cab_len
    parts = [
        poly(
            [[-half_l + 0.3, 0.6], [half_l - 0.3, 0.6], [half_l - 0.3, chassis], [-half_l + 0.3, chassis]], (40, 40, 44)
        )
    ]
    if look.style == 0:
        parts.append(
            poly(
                [[-half_l, chassis], [cab_back - 0.15, chassis], [cab_back - 0.15, top], [-half_l, top]],
                cargo,
                stripes=(darker(cargo, 0.88), 0.5),
            )
        )
    else:
        parts.append(
            poly(
                [
                    [-half_l, chassis],
                    [cab_back - 0.15, chassis],
                    [cab_back - 0.15, chassis + 0.25],
                    [-half_l, chassis + 0.25],
                ],
                darker(paint, 0.7),
            )
        )
        load_end = -half_l + (cab_back + half_l) * 0.55
        parts.append(
            poly(
                [
                    [-half_l + 0.3, chassis + 0.25],
                    [load_end, chassis + 0.25],
                    [load_end, chassis + 1.2],
                    [-half_l + 0.3, chassis + 1.2],
                ],
                cargo,
            )
        )
    parts += [
        poly(
            [[cab_back, 0.55], [half_l, 0.55], [half_l, cab_top - 0.9], [half_l - 0.5, cab_top], [cab_back, cab_top]],
            paint,
        ),
        poly(
            [
                [half_l - 0.08, cab_top - 0.95],
                [half_l - 0.55, cab_top - 0.08],
                [half_l - 1.05, cab_top - 0.08],
                [half_l - 1.05, cab_top - 0.95],
            ],
            GLASS,
        ),
        poly([[half_l, 0.6], [half_l - 0.25, 0.6], [half_l - 0.25, 0.85], [half_l, 0.85]], HEADLIGHT),
        capsule([half_l - 1.2, 0.7], [half_l - 1.2, cab_top - 0.2], 0.012, darker(paint, 0.6)),
    ]
    axles = [half_l - 1.1, -half_l + 1.2] + ([-half_l + 2.3] if look.length > 8 else [])
    for x in axles:
        parts.append(disc([x, wr], wr, TYRE))
        parts.append(disc([x, wr], wr * 0.5, HUB))
    if top_view > 0:
        band = look.width * top_view
        if look.style == 0:
            parts.insert(
                0,
                poly(
                    [
                        [-half_l, top - 0.02],
                        [cab_back - 0.15, top - 0.02],
                        [cab_back - 0.15, top + band],
                        [-half_l, top + band],
                    ],
                    lighter(cargo),
                ),
            )
        parts.insert(
            0,
            poly(
                [
                    [cab_back, cab_top - 0.02],
                    [half_l - 0.5, cab_top - 0.02],
                    [half_l - 0.6, cab_top + band],
                    [cab_back, cab_top + band],
                ],
                lighter(paint),
            ),
        )
    return parts


def bicycle_elevation(look: VehicleLook, sideness: float) -> list[Part]:
    """A bicycle: two spoked wheels and a diamond frame, or its thin front/back silhouette."""
    wr = look.wheel_radius
    frame, tube = look.paint, 0.022
    if sideness <= 0.55:
        return [
            capsule([0, 0.03], [0, 2 * wr - 0.03], 0.028, TYRE),
            capsule([0, 2 * wr - 0.1], [0, 0.98], 0.02, frame),
            capsule([-0.27, 1.0], [0.27, 1.0], 0.018, (30, 30, 30)),
            capsule([-0.05, 0.9], [0.05, 0.9], 0.04, (25, 25, 25)),
        ]
    half = look.length / 2 - wr
    rear, front = np.array([-half, wr]), np.array([half, wr])
    bracket, seat, head = np.array([-0.02, 0.3]), np.array([-0.2, 0.84]), np.array([half - 0.16, 0.82])
    parts: list[Part] = []
    for centre in (rear, front):
        parts.append(Part("ring", np.asarray([centre], np.float32), TYRE, size=wr - 0.02, width=0.045))
        parts.append(capsule(centre - [0.0, wr * 0.9], _off(centre, 0.0, wr * 0.9), 0.006, HUB))
        parts.append(capsule(centre - [wr * 0.9, 0.0], _off(centre, wr * 0.9, 0.0), 0.006, HUB))
    parts += [
        capsule(rear, bracket, tube, frame),
        capsule(rear, seat, tube, frame),
        capsule(bracket, seat, tube, frame),
        capsule(bracket, head, tube, frame),
        capsule(_off(seat, 0.02, -0.05), head, tube, frame),
        capsule(head, front, tube, frame),
        capsule(seat, _off(seat, 0.0, 0.08), 0.015, (40, 40, 40)),
        capsule(_off(seat, -0.08, 0.09), _off(seat, 0.07, 0.09), 0.03, (25, 25, 25)),
        capsule(head, _off(head, -0.03, 0.18), 0.015, (60, 60, 60)),
        capsule(_off(head, -0.03, 0.18), _off(head, 0.1, 0.19), 0.016, (30, 30, 30)),
        disc(bracket, 0.06, (70, 70, 72)),
    ]
    return parts


def person_plan(look: PersonLook, phase: float, riding: bool = False) -> list[Part]:
    """A person from above: legs striding under shoulders, swinging arms, head."""
    scale = look.height / 1.72
    shoulder = 0.23 * look.build * scale
    parts: list[Part] = []
    for side in (-1, 1):
        foot_x = 0.32 if riding else side * 0.3 * np.sin(phase) * scale
        parts.append(capsule([0.0, side * 0.1 * scale], [foot_x, side * 0.11 * scale], 0.07 * scale, look.trousers))
    for side in (-1, 1):
        hand_x = 0.38 if riding else -side * 0.22 * np.sin(phase) * scale
        parts.append(
            capsule([0.0, side * shoulder * 0.9], [hand_x, side * (shoulder + 0.02)], 0.05 * scale, look.shirt)
        )
        parts.append(disc([hand_x, side * (shoulder + 0.02)], 0.045 * scale, look.skin))
    parts.append(ellipse([0.0, 0.0], (0.13 * scale, shoulder), 0.0, look.shirt))
    if look.backpack is not None:
        parts.append(ellipse([-0.12 * scale, 0.0], (0.07 * scale, 0.14 * scale), 0.0, look.backpack))
    parts.append(disc([0.02, 0.0], 0.1 * scale, look.hat if look.hat is not None else look.hair))
    return parts


def car_plan(look: VehicleLook) -> list[Part]:
    """A car from above: rounded body, windscreen, rear window, roof."""
    half_l, half_w = look.length / 2, look.width / 2
    c = 0.35
    body = [[half_l, half_w - c], [half_l - c, half_w], [-half_l + c * 0.6, half_w], [-half_l, half_w - c * 0.6],
            [-half_l, -half_w + c * 0.6], [-half_l + c * 0.6, -half_w], [half_l - c, -half_w], [half_l, -half_w + c]]  # fmt: skip
    screen_front = half_l - look.length * (0.28 if look.style == 0 else 0.24)
    roof_front = screen_front - 0.5
    rear_base = -half_l + look.length * [0.18, 0.07, 0.05][look.style]
    roof_rear = rear_base + (0.45, 0.2, 0.15)[look.style]
    hw = half_w - 0.12
    return [
        poly(body, look.paint),
        poly([[screen_front, hw], [roof_front, hw - 0.08], [roof_front, -hw + 0.08], [screen_front, -hw]], GLASS),
        poly(
            [[roof_front, hw - 0.08], [roof_rear, hw - 0.08], [roof_rear, -hw + 0.08], [roof_front, -hw + 0.08]],
            darker(look.paint, 0.9),
        ),
        poly([[roof_rear, hw - 0.08], [rear_base, hw - 0.02], [rear_base, -hw + 0.02], [roof_rear, -hw + 0.08]], GLASS),
        capsule([screen_front - 0.2, half_w], [screen_front - 0.3, half_w + 0.15], 0.05, look.paint),
        capsule([screen_front - 0.2, -half_w], [screen_front - 0.3, -half_w - 0.15], 0.05, look.paint),
    ]


def truck_plan(look: VehicleLook) -> list[Part]:
    """A truck from above: cab, gap, cargo box (ribbed roof) or flatbed with a load."""
    half_l, half_w = look.length / 2, look.width / 2
    cab_back = half_l - 2.2
    parts = [
        poly(
            [
                [half_l, half_w - 0.1],
                [half_l - 0.1, half_w],
                [cab_back, half_w],
                [cab_back, -half_w],
                [half_l - 0.1, -half_w],
                [half_l, -half_w + 0.1],
            ],
            look.paint,
        )
    ]
    parts.append(
        poly(
            [
                [half_l - 0.05, half_w - 0.12],
                [half_l - 0.6, half_w - 0.12],
                [half_l - 0.6, -half_w + 0.12],
                [half_l - 0.05, -half_w + 0.12],
            ],
            GLASS,
        )
    )
    box = [[cab_back - 0.2, half_w], [-half_l, half_w], [-half_l, -half_w], [cab_back - 0.2, -half_w]]
    if look.style == 0:
        # rotate the stripes' sense: plan x is along the truck, so ribs come out as bands across y
        parts.append(poly(box, look.cargo, stripes=(darker(look.cargo, 0.9), 0.6)))
    else:
        parts.append(poly(box, darker(look.paint, 0.6)))
        parts.append(
            poly(
                [
                    [cab_back - 0.6, half_w - 0.2],
                    [-half_l + 0.5, half_w - 0.2],
                    [-half_l + 0.5, -half_w + 0.2],
                    [cab_back - 0.6, -half_w + 0.2],
                ],
                look.cargo,
            )
        )
    return parts


def bicycle_plan(look: VehicleLook) -> list[Part]:
    half = look.length / 2
    return [
        capsule([-half, 0.0], [half, 0.0], 0.03, TYRE),
        capsule([half - 0.25, -0.27], [half - 0.25, 0.27], 0.025, (40, 40, 40)),
        capsule([-0.3, 0.0], [half - 0.3, 0.0], 0.035, look.paint),
    ]
