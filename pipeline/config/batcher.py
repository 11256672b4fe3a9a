"""Config of cross-source batching."""

from __future__ import annotations

from pydantic import Field

from pipeline.config.base import StrictModel


class BatcherConfig(StrictModel):
    """How frames of all sources are grouped into model batches, and how much may wait in front of the model."""

    batch_size: int = Field(
        4, ge=1, le=64, description="At most this many frames per model call, from any mix of sources."
    )
    max_wait_ms: float = Field(
        20.0,
        ge=0.0,
        description="A batch leaves when full or when its first frame has waited this long (bounds live latency).",
    )
    file_queue_size: int = Field(
        8, ge=1, description="Frames a file source may decode ahead; a full queue pauses decoding (no frame lost)."
    )
    live_queue_size: int = Field(
        2,
        ge=1,
        description="Frames a live source may hold; when full the OLDEST is dropped (counted as stale), so latency "
        "stays bounded when the model is slower than the camera.",
    )
    pin_memory: bool = Field(
        True, description="On CUDA, stage frames in pinned host memory for asynchronous copies to the GPU."
    )
