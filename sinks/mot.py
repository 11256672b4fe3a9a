"""Writes tracks as MOTChallenge (boxes) and MOTS (masks) text files, so any MOT tool can score a run.

For each source, in the output directory:
- `<source>.txt`, MOTChallenge: `frame,id,x,y,w,h,conf,-1,-1,-1` (frame 1-based, box top-left and size in pixels);
  one row per track the tracker reports for the frame.
- `<source>_masks.txt`, MOTS: `frame id class_id height width rle` (frame 1-based, COCO compressed RLE string);
  one row per track observed in the frame (a coasting track has no mask). `id` is the track id itself (unique
  per source), `class_id` the model's label index.

Frame numbers are the decoder's frame index + 1, so frames skipped by an fps cap keep their place in time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TextIO

import numpy as np

from pipeline.errors import ConfigError
from pipeline.items import Detections, FrameResult, TrackState
from pipeline.rle import crop_rles
from sinks.base import FrameSink

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_stem(source_id: str) -> str:
    """A source id as a file name: anything but letters, digits, '.', '_' and '-' becomes '_'."""
    stem = _UNSAFE.sub("_", source_id).strip("._") or "source"
    return stem


def mot_row(frame_number: int, track: TrackState) -> str:
    x1, y1, x2, y2 = (float(v) for v in track.box)
    return f"{frame_number},{track.track_id},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{track.score:.4f},-1,-1,-1\n"


def mots_row(frame_number: int, track: TrackState, height: int, width: int, rle_counts: str) -> str:
    return f"{frame_number} {track.track_id} {track.label} {height} {width} {rle_counts}\n"


class MotWriter(FrameSink):
    """Frame sink (`write`, `end_source`, `close`) for the pipeline's `--mot-out DIR`."""

    def __init__(self, out_dir: str | Path, masks: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.masks = masks
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create MOT output directory {self.out_dir}: {exc.strerror or exc}") from exc
        self._files: dict[str, tuple[TextIO, TextIO | None]] = {}

    def paths(self, source_id: str) -> tuple[Path, Path]:
        stem = safe_file_stem(source_id)
        return self.out_dir / f"{stem}.txt", self.out_dir / f"{stem}_masks.txt"

    def _open(self, source_id: str) -> tuple[TextIO, TextIO | None]:
        files = self._files.get(source_id)
        if files is None:
            box_path, mask_path = self.paths(source_id)
            try:
                files = (
                    box_path.open("w", encoding="ascii"),
                    mask_path.open("w", encoding="ascii") if self.masks else None,
                )
            except OSError as exc:
                raise ConfigError(f"cannot write MOT file in {self.out_dir}: {exc.strerror or exc}") from exc
            self._files[source_id] = files
        return files

    def write(self, result: FrameResult) -> None:
        frame = result.frame
        boxes_file, masks_file = self._open(frame.source_id)
        number = frame.index + 1
        height, width = frame.image.shape[:2]
        dets = result.detections
        for track in result.tracks:
            boxes_file.write(mot_row(number, track))
            if masks_file is None or track.detection_index is None:
                continue
            counts = self._rle_counts(dets, track.detection_index)
            if counts is not None:
                masks_file.write(mots_row(number, track, height, width, counts))

    @staticmethod
    def _rle_counts(dets: Detections, index: int) -> str | None:
        if index < len(dets.rles):
            counts = dets.rles[index]["counts"]
            return counts.decode("ascii") if isinstance(counts, bytes) else str(counts)
        if index < len(dets.windows):  # no RLE made upstream: encode the crop (never a full-frame mask)
            a, b = dets.mask_offsets[index], dets.mask_offsets[index + 1]
            (rle,) = crop_rles(
                dets.mask_pixels[a:b],
                np.array([0, b - a]),
                dets.windows[index : index + 1],
                np.array([dets.frame_size]),
            )
            return rle["counts"]
        return None

    def end_source(self, source_id: str) -> None:
        files = self._files.pop(source_id, None)
        if files is not None:
            for f in files:
                if f is not None:
                    f.close()

    def close(self) -> None:
        for source_id in list(self._files):
            self.end_source(source_id)
