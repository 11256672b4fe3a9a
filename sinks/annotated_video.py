"""Annotated MP4 sink: each frame with its masks (alpha-blended), boxes, class names and track ids.

Drawing is OpenCV; encoding is PyAV (H.264, yuv420p, playable everywhere). One file per source, opened on the
source's first frame (frame rate from the stream, size from the frame) and closed at its end of stream.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from pipeline.errors import MaskstreamError
from pipeline.items import FrameResult, RegionOverlay
from sinks.base import FrameSink
from sinks.paths import annotated_video_path

log = logging.getLogger(__name__)

_ALPHA = 0.45
_UNTRACKED = (160, 160, 160)
_ZONE = (255, 210, 0)
_LINE = (0, 230, 255)


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, well-spread RGB colour per track id (golden-ratio hue steps)."""
    hue = int((track_id * 0.61803398875 % 1.0) * 180)
    hsv = np.array([[[hue, 200, 255]]], np.uint8)
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def draw_result(result: FrameResult, class_names: list[str]) -> np.ndarray:
    """An RGB copy of the frame with the result drawn on it."""
    image = result.frame.image.copy()
    det = result.detections
    by_detection = {t.detection_index: t for t in result.tracks if t.detection_index is not None}
    colors = [track_color(by_detection[i].track_id) if i in by_detection else _UNTRACKED for i in range(len(det))]
    if len(det):
        # one blend for all masks: colour layer where any mask is, later (higher-scoring first) masks on top;
        # each mask touches only its crop window
        overlay = image.copy()
        covered = np.zeros(image.shape[:2], bool)
        for index in np.argsort(det.scores):
            x0, y0, w, h = (int(v) for v in det.windows[index])
            crop = det.mask(index)
            overlay[y0 : y0 + h, x0 : x0 + w][crop] = colors[index]
            covered[y0 : y0 + h, x0 : x0 + w] |= crop
        image[covered] = (image[covered] * (1 - _ALPHA) + overlay[covered] * _ALPHA).astype(np.uint8)
    for index in range(len(det)):
        x1, y1, x2, y2 = (round(float(v)) for v in det.boxes[index])
        cv2.rectangle(image, (x1, y1), (x2, y2), colors[index], 2)
        name = class_names[det.labels[index]] if det.labels[index] < len(class_names) else str(det.labels[index])
        track = by_detection.get(index)
        label = f"{name} #{track.track_id}" if track else name
        label += f" {det.scores[index]:.2f}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        ty = max(th + 4, y1)
        cv2.rectangle(image, (x1, ty - th - 4), (x1 + tw + 4, ty), colors[index], -1)
        cv2.putText(image, label, (x1 + 2, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    if result.analytics is not None:
        draw_regions(image, result.analytics.overlay)
    # coasting tracks (not observed this frame): dashed-looking thin box at the prediction
    for track in result.tracks:
        if track.detection_index is None:
            x1, y1, x2, y2 = (round(float(v)) for v in track.box)
            cv2.rectangle(image, (x1, y1), (x2, y2), track_color(track.track_id), 1)
    return image


def draw_regions(image: np.ndarray, overlay: list[RegionOverlay]) -> None:
    """Zones as outlined polygons, lines as thick segments, each labelled with its live counts."""
    for region in overlay:
        points = np.round(region.points).astype(np.int32)
        colour = _ZONE if region.kind == "zone" else _LINE
        if region.kind == "zone":
            cv2.polylines(image, [points.reshape(-1, 1, 2)], True, colour, 2, cv2.LINE_AA)
        else:
            cv2.line(image, tuple(points[0]), tuple(points[1]), colour, 3, cv2.LINE_AA)
        x, y = int(points[:, 0].min()), int(points[:, 1].min())
        (tw, th), _ = cv2.getTextSize(region.text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        x = min(max(0, x), max(0, image.shape[1] - tw - 4))
        y = max(th + 4, y)
        cv2.rectangle(image, (x, y - th - 4), (x + tw + 4, y), colour, -1)
        cv2.putText(image, region.text, (x + 2, y - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)


class _Writer:
    def __init__(self, path: Path, width: int, height: int, fps: float) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(path), "w")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        rate = Fraction(fps).limit_denominator(1001) if fps and fps > 0 else Fraction(25)
        stream = self.container.add_stream(codec, rate=rate)
        assert isinstance(stream, av.VideoStream)  # a video codec gives a video stream
        self.stream = stream
        self.width, self.height = width - width % 2, height - height % 2  # yuv420p needs even sizes
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, "yuv420p"
        if codec == "libx264":
            self.stream.options = {"preset": "veryfast", "crf": "23"}
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        image = np.ascontiguousarray(image[: self.height, : self.width])
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self.frames
        self.frames += 1
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


class AnnotatedVideoSink(FrameSink):
    """Implements the runtime's FrameSink protocol (write / end_source / close)."""

    def __init__(self, path: str | Path, class_names: list[str], several_sources: bool = False) -> None:
        self.template = str(path)
        self.class_names = class_names
        self.several_sources = several_sources
        self._writers: dict[str, _Writer] = {}
        self.paths: dict[str, Path] = {}
        self._fps: dict[str, float] = {}

    def path_for(self, source_id: str) -> Path:
        return annotated_video_path(self.template, source_id, self.several_sources)

    def write(self, result: FrameResult) -> None:
        source_id = result.frame.source_id
        writer = self._writers.get(source_id)
        if writer is None:
            height, width = result.frame.size
            path = self.path_for(source_id)
            try:
                writer = _Writer(path, width, height, self._fps_hint(result))
            except (OSError, av.error.FFmpegError) as exc:
                raise MaskstreamError(f"annotated video {path}: cannot write ({exc})") from None
            self._writers[source_id] = writer
            self.paths[source_id] = path
        writer.write(draw_result(result, self.class_names))

    def start_source(self, source_id: str, info: dict) -> None:
        """The source's `started` info: its frame rate becomes the video's."""
        fps = info.get("fps")
        if isinstance(fps, int | float) and fps > 0:
            self._fps[source_id] = float(fps)

    def _fps_hint(self, result: FrameResult) -> float:
        return self._fps.get(result.frame.source_id, 25.0)

    def end_source(self, source_id: str) -> None:
        writer = self._writers.pop(source_id, None)
        if writer is not None:
            writer.close()
            log.info("annotated video of %s: %s (%d frames)", source_id, writer.path, writer.frames)

    def close(self) -> None:
        for source_id in list(self._writers):
            self.end_source(source_id)
