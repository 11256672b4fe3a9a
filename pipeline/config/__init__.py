"""One home for configuration: a strict pydantic tree, one module per section.

| module | section |
|---|---|
| `base.py` | `StrictModel` (unknown keys rejected), `BackoffConfig` (the one retry setting, see `pipeline/backoff.py`) |
| `root.py` | `PipelineConfig`, the root of a config file |
| `sources.py` | `sources[]`: URLs, timeouts, reconnect backoff |
| `zones.py` | `sources[].zones[]`, `sources[].lines[]`: zones and counting lines; a zones/lines file (`synth --zones`) |
| `model.py` | `model`: architecture, weights, device, thresholds |
| `batcher.py` | `batcher`: batch size, waits, queue sizes |
| `tracker.py` | `tracker`: association, lifecycle, camera-motion compensation |
| `redis.py` | `redis`: URL, stream keys, trimming, spool |
| `sinks.py` | `sinks`: JSON Lines, annotated video, MOT files |
| `observability.py` | `metrics`, `log` |
| `cluster.py` | `cluster`: `run --ray` placement, failure detection, fencing |
| `loader.py` | YAML → CLI overrides → `${ENV}` → validation; one-line errors (`pipeline.errors.config_error`) |
| `reference.py` | the option reference in docs/CONFIG.md (`python -m pipeline.config`) |
"""

from pipeline.config.batcher import BatcherConfig
from pipeline.config.loader import (
    apply_override,
    build_config,
    interpolate_env,
    load_config,
    load_model_config,
    load_yaml,
    sources_from_cli,
)
from pipeline.config.model import ModelConfig
from pipeline.config.observability import LogConfig, MetricsConfig
from pipeline.config.redis import RedisConfig
from pipeline.config.root import PipelineConfig
from pipeline.config.sinks import SinksConfig
from pipeline.config.sources import ReconnectConfig, SourceConfig
from pipeline.config.tracker import TrackerConfig

__all__ = [
    "BatcherConfig",
    "LogConfig",
    "MetricsConfig",
    "ModelConfig",
    "PipelineConfig",
    "ReconnectConfig",
    "RedisConfig",
    "SinksConfig",
    "SourceConfig",
    "TrackerConfig",
    "apply_override",
    "build_config",
    "interpolate_env",
    "load_config",
    "load_model_config",
    "load_yaml",
    "sources_from_cli",
]
