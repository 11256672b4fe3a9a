"""Config of the model: architecture, weights, device, thresholds, sliced inference (tiling)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import StrictModel


class TilingConfig(StrictModel):
    """Sliced inference (as SAHI): overlapping tiles and the whole frame in one model batch, merged per object."""

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


class ModelConfig(StrictModel):
    """Which Mask R-CNN runs, where, and which of its detections count."""

    weights: str = Field(
        "auto",
        description="auto = the best COCO checkpoint in torch.hub's cache (resnet50_fpn_v2_coco, then "
        "resnet50_fpn_coco: `maskstream weights fetch NAME`), else the bundled model; bundled = the bundled model "
        "(trained on synthetic scenes only); or a path: our .safetensors, or a torchvision .pth checkpoint.",
    )
    arch: str | None = Field(
        None, description="Registered architecture name; null = the one recorded in the weights' metadata."
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="auto (CUDA when available, else CPU), cpu, cuda or cuda:N.",
    )
    precision: Literal["fp32", "fp16", "bf16"] = Field(
        "fp32",
        description="fp16 or bf16 runs the model under autocast. fp16: CUDA only (fp32 with a warning on the CPU); "
        "bf16: CUDA with bf16 support, or the CPU.",
    )
    warmup: bool | None = Field(
        None,
        description="Run one dummy batch (batcher.batch_size frames at warmup_size, detections forced) before the "
        "first real frame: compiles our RoIAlign kernel, initialises cuDNN and the allocator, so the first real "
        "batch is not seconds late; null = on CUDA only.",
    )
    warmup_size: tuple[int, int] = Field(
        (720, 1280), description="Height and width of the warm-up frames (the model resizes them like real ones)."
    )
    cudnn_benchmark: bool | None = Field(
        None,
        description="torch.backends.cudnn.benchmark: cuDNN times its algorithms for each new input shape and keeps "
        "the fastest (faster when shapes repeat; every new shape costs a stall). null = on with CUDA when every "
        "source is a single file (a camera may switch resolution mid-stream; files played back to back may differ).",
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
    min_size: int | None = Field(
        None,
        ge=64,
        description="Model input: frames are resized so their shorter side is this many px; null = the "
        "architecture's (800 for the COCO models, 360 for the bundled one). The main speed knob on a CPU; smaller "
        "misses small objects (docs/MODEL.md has measured speeds).",
    )
    max_size: int | None = Field(
        None, ge=64, description="Model input: cap on the longer side after resizing, px; null = the architecture's."
    )
    tiling: TilingConfig | None = Field(
        None, description="Sliced inference for small objects (see TilingConfig); null = whole frames only."
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads for the model (torch intra-op); null = torch's default (one per core)."
    )

    @field_validator("warmup_size")
    @classmethod
    def _positive_size(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 16:
            raise ValueError(f"both sides must be at least 16 pixels (got {list(value)})")
        return value

    @field_validator("weights", mode="before")
    @classmethod
    def _empty_weights_is_auto(cls, value: str | None) -> str:
        # `weights: ${MASKSTREAM_WEIGHTS:-}` in a config means "the default" when the variable is unset
        return value or "auto"

    @field_validator("arch")
    @classmethod
    def _empty_is_default(cls, value: str | None) -> str | None:
        return value or None

    def builder_options(self) -> dict[str, int]:
        """Architecture options set here (the rest stay the architecture's defaults)."""
        options = {"min_size": self.min_size, "max_size": self.max_size}
        return {name: value for name, value in options.items() if value is not None}
