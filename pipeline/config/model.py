"""Config of the model: architecture, weights, device, thresholds, sliced inference (tiling)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class TilingConfig(BaseModel):
    """Sliced inference (as SAHI): overlapping tiles and the whole frame in one model batch, merged per object."""

    model_config = ConfigDict(extra="forbid")

    tile_size: tuple[int, int] | None = Field(
        None,
        description="Tile width and height in frame pixels, e.g. [640, 360]; each tile runs at the model's input "
        "size. A tile larger than the frame shrinks to the frame (one tile = the frame, run once, as untiled).",
    )
    grid: tuple[int, int] | None = Field(
        None, description="Columns and rows of tiles covering the frame (tile size follows from it and `overlap`)."
    )
    overlap: float = Field(
        0.2, ge=0.0, lt=1.0, description="Fraction of a tile shared with its neighbour (SAHI's default 0.2)."
    )
    full_frame: bool = Field(
        True, description="Also run the whole frame, resized to the model's input, for large objects."
    )
    drop_cut: bool = Field(
        True,
        description="Drop a tile's detections that touch one of its inner edges (objects the tile cuts; a "
        "neighbouring tile or the whole frame sees them whole) before merging; only with full_frame. false = "
        "merge the cut pieces as SAHI does.",
    )
    match_threshold: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Two detections of one class are one object when their boxes' intersection over the smaller "
        "box reaches this (greedy non-maximum merging, as SAHI's GREEDYNMM with IOS).",
    )

    @field_validator("tile_size", "grid")
    @classmethod
    def _positive(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and min(value) < 1:
            raise ValueError(f"both numbers must be at least 1 (got {list(value)})")
        return value

    @model_validator(mode="after")
    def _one_way(self) -> TilingConfig:
        if (self.tile_size is None) == (self.grid is None):
            raise ValueError("give exactly one of tile_size ([width, height] px) and grid ([columns, rows])")
        if self.tile_size is not None and min(self.tile_size) < 32:
            raise ValueError(f"tile_size: tiles must be at least 32 px a side (got {list(self.tile_size)})")
        return self


class ModelConfig(BaseModel):
    """Which Mask R-CNN runs, where, and which of its detections count."""

    model_config = ConfigDict(extra="forbid")

    weights: str | None = Field(
        None,
        description="Path to a .safetensors weights file (ours, or torchvision COCO weights converted by "
        "`maskrcnn`); null = the bundled model trained on synthetic scenes.",
    )
    arch: str | None = Field(
        None, description="Registered architecture name; null = the one recorded in the weights' metadata."
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="auto (CUDA when available, else CPU), cpu, cuda or cuda:N.",
    )
    precision: Literal["fp32", "fp16"] = Field(
        "fp32", description="fp16 runs the model under autocast on CUDA (ignored with a warning on the CPU)."
    )
    score_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Detections scoring below this are dropped.")
    mask_threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="A pixel belongs to an instance where its mask probability exceeds this."
    )
    classes: list[str] | None = Field(
        None, description="Keep only detections of these class names (checked against the model); null = all."
    )
    max_detections: int = Field(100, ge=1, le=1000, description="At most this many detections per frame.")
    roi_align: Literal["auto", "torchvision", "cupy", "host"] = Field(
        "auto",
        description="RoIAlign implementation: auto = our CuPy kernel on CUDA when available, else torchvision's; "
        "cupy = our kernel (CUDA only); host = our kernel's CPU build (for verification, slow).",
    )
    input_size: tuple[int, int] | None = Field(
        None,
        description="[shorter side, longer side cap] the model resizes each image (or tile) to; null = the "
        "architecture's own (360/640 for the bundled model). Larger shows small objects bigger, at more cost.",
    )
    tiling: TilingConfig | None = Field(
        None, description="Sliced inference for small objects (see TilingConfig); null = whole frames only."
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads for the model (torch intra-op); null = torch's default (one per core)."
    )

    @field_validator("input_size")
    @classmethod
    def _sides(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 32 <= value[0] <= value[1]:
            raise ValueError(f"expected [shorter side, longer side] with 32 <= shorter <= longer (got {list(value)})")
        return value

    @field_validator("weights", "arch")
    @classmethod
    def _empty_is_default(cls, value: str | None) -> str | None:
        # `weights: ${MASKSTREAM_WEIGHTS:-}` in a config means "the default" when the variable is unset
        return value or None
