"""The root configuration: one pydantic tree composed of the sections in this package."""

from __future__ import annotations

from pydantic import Field, field_validator

from pipeline.config.base import StrictModel
from pipeline.config.batcher import BatcherConfig
from pipeline.config.cluster import ClusterConfig
from pipeline.config.model import ModelConfig
from pipeline.config.observability import LogConfig, MetricsConfig
from pipeline.config.redis import RedisConfig
from pipeline.config.sinks import SinksConfig
from pipeline.config.sources import SourceConfig
from pipeline.config.tracker import TrackerConfig


class PipelineConfig(StrictModel):
    """Root of a maskstream config file."""

    sources: list[SourceConfig] = Field(..., min_length=1, description="Video sources, processed concurrently.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The instance-segmentation model.")
    batcher: BatcherConfig = Field(default_factory=BatcherConfig, description="Cross-source batching.")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Multi-object tracking per source.")
    redis: RedisConfig | None = Field(None, description="Publish events to Redis Streams; null = no Redis.")
    sinks: SinksConfig = Field(default_factory=SinksConfig, description="Other outputs.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus and health endpoint.")
    log: LogConfig = Field(default_factory=LogConfig, description="Logging and progress output.")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig, description="`run --ray`: across a Ray cluster.")

    @field_validator("sources")
    @classmethod
    def _unique_ids(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        seen: set[str] = set()
        for source in sources:
            if source.id in seen:
                raise ValueError(f"source id {source.id!r} is used twice; ids must be unique")
            seen.add(source.id)
        return sources
