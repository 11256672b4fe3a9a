"""Config of the outputs beside Redis: JSON Lines, annotated video, MOT files."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from pipeline.config.base import StrictModel


class SinksConfig(StrictModel):
    """Where results go besides Redis."""

    jsonl: Path | None = Field(None, description="Write every event as one JSON line to this file.")
    annotate: str | None = Field(
        None,
        description="Write an annotated H.264 MP4 (masks, boxes, class and track ids). With several sources put "
        "`{source_id}` in the path, else the source id is appended to the file name.",
    )
    mot_out: Path | None = Field(
        None, description="Write MOTChallenge-format tracks, one `<source_id>.txt` per source."
    )
    frame_summary: bool = Field(
        False,
        description="Also publish a `frame.summary` event for every processed frame (size, detection count, live "
        "track ids); off by default: one event per frame is a lot of traffic.",
    )
    close_timeout_s: float = Field(
        30.0, gt=0.0, description="At shutdown, wait this long for sinks to flush (Redis spool, files)."
    )
