"""Config of `maskstream run --ray`: placement, failure detection and fencing across a Ray cluster (docs/CLUSTER.md).

Ignored without `--ray`. The Ray address comes from the command line and the Ray token from the environment
(`RAY_AUTH_TOKEN` / `RAY_AUTH_TOKEN_PATH`), never from this file.
"""

from __future__ import annotations

from pydantic import Field

from pipeline.config.base import StrictModel


class ClusterConfig(StrictModel):
    job_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description=(
            "Names the job's state in Redis; running the same job again resumes it (finished files are not "
            "redone). Default: a hash of the source ids and URLs, so the same command resumes by itself."
        ),
    )
    namespace: str = Field("maskstream", description="Ray namespace of the worker actors.")
    worker_capacity: float = Field(
        4.0,
        gt=0,
        description=(
            "Cost units one worker serves (one unit = a 1280x720 stream at 30 fps, or one file). Sources beyond "
            "the cluster's capacity wait, and say so."
        ),
    )
    slots_per_gpu: int = Field(
        1, ge=1, description="On nodes that offer no `maskstream_slot` resource: worker actors per GPU."
    )
    max_attempts: int = Field(
        3, ge=1, description="A source that fails this many times (each time on another worker if possible) stops."
    )
    poll_interval_s: float = Field(0.5, gt=0, description="How often the controller asks every worker how it is.")
    worker_timeout_s: float = Field(
        5.0, gt=0, description="A worker silent this long (hung, paused, cut off) is lost: its sources move."
    )
    stop_timeout_s: float = Field(
        15.0, gt=0, description="Graceful hand-over: how long the old owner may take to end tracks and flush."
    )
    max_seen_ids: int = Field(
        200_000,
        ge=1000,
        description="Per stream: event ids remembered to drop duplicates (a file replayed after a worker died).",
    )
    seen_ttl_s: int = Field(7 * 24 * 3600, ge=60, description="Per stream: how long those ids are remembered.")
