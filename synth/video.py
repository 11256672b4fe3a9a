"""H.264 (yuv420p) MP4 writer on PyAV, the same library the pipeline decodes with."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np


class VideoWriter:
    def __init__(self, path: Path, size: tuple[int, int], fps: float, crf: int = 18) -> None:
        self.path = path
        self._container = av.open(str(path), mode="w")
        self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        # fixed encoder settings (and thread count) keep the bitstream identical run to run
        self._stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        self._index = 0

    def write(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = self._index  # explicit timestamps: frame i is shown at i / fps
        self._index += 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._container.close()
