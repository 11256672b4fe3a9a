"""H.264 (yuv420p) MP4 writer on PyAV, the same library the pipeline decodes with.

The encoder runs in a child process fed raw RGB frames through a pipe. Two reasons: it overlaps encoding
with rendering (two cores), and it makes the bitstream reproducible. libx264's SIMD code reads bytes it
never wrote (planes' tails, its own padding), so inside a busy process the encoded bits — and so the
decoded pixels — varied from run to run for identical frames; a fresh process doing nothing but encoding
the same frames always holds the same bytes there.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import numpy as np

from pipeline.errors import MaskstreamError


class VideoWriter:
    """Context manager: `write(rgb)` each frame, output complete on a clean exit."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float, crf: int = 18) -> None:
        self.path = Path(path)
        self.size = size
        rate = Fraction(fps).limit_denominator(1001)
        command = [sys.executable, "-m", "synth.video", str(self.path), str(size[0]), str(size[1]), str(rate), str(crf)]
        self._child = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, rgb: np.ndarray) -> None:
        width, height = self.size
        if rgb.shape != (height, width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"frame of shape {rgb.shape} {rgb.dtype}, expected ({height}, {width}, 3) uint8")
        try:
            self._child.stdin.write(np.ascontiguousarray(rgb).data)
        except BrokenPipeError:
            self._fail()

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._child.stdin.close()
        if self._child.wait() != 0:
            self._fail()

    def _fail(self) -> None:
        self._child.kill()
        self._child.wait()
        message = self._child.stderr.read().decode(errors="replace").strip().splitlines()
        raise MaskstreamError(f"video encoder for {self.path} failed: {message[-1] if message else 'no message'}")

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._child.kill()
            self._child.wait()


def _encode(path: str, width: int, height: int, rate: Fraction, crf: int) -> None:
    """Child process: raw RGB frames on stdin -> H.264 MP4 at `path`."""
    import av

    frame_bytes = width * height * 3
    buffer = bytearray(frame_bytes)  # one buffer, reused: the same allocations in every run
    view = memoryview(buffer)
    source = sys.stdin.buffer
    from synth.annotations import GENERATOR_VERSION
    from synth.marker import marker_text

    with av.open(path, mode="w") as container:
        container.metadata["comment"] = marker_text(GENERATOR_VERSION)  # says "synthetic" to the pipeline
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        index = 0
        while True:
            filled = 0
            while filled < frame_bytes:
                got = source.readinto(view[filled:])
                if not got:
                    break
                filled += got
            if filled == 0:
                break
            if filled != frame_bytes:
                raise SystemExit(f"truncated frame {index}: {filled} of {frame_bytes} bytes")
            rgb = np.frombuffer(buffer, np.uint8).reshape(height, width, 3)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index  # explicit timestamps: frame i is shown at i / fps
            index += 1
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


if __name__ == "__main__":
    _encode(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Fraction(sys.argv[4]), int(sys.argv[5]))
