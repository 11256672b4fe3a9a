"""The classes the simulator draws, with COCO's own ids and names so labels work as with COCO weights."""

from __future__ import annotations

PERSON = 1
BICYCLE = 2
CAR = 3
TRUCK = 8

NAMES = {PERSON: "person", BICYCLE: "bicycle", CAR: "car", TRUCK: "truck"}
SUPERCATEGORIES = {PERSON: "person", BICYCLE: "vehicle", CAR: "vehicle", TRUCK: "vehicle"}


def coco_categories() -> list[dict]:
    """The `categories` block of our COCO files."""
    return [{"id": cid, "name": name, "supercategory": SUPERCATEGORIES[cid]} for cid, name in NAMES.items()]
